"""The docs build with warnings as errors, and their reference tables can't drift from the
code: a setting or hook field without a description, or a description of one that doesn't
exist, fails the build."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


pytest.importorskip("sphinx", reason="the docs extra (sphinx, furo) is not installed")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def build(source, tmp_path, builder="html"):
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", builder]
        + [str(source), str(tmp_path / builder)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_docs_build_without_a_warning(tmp_path):
    result = build(DOCS, tmp_path)
    assert result.returncode == 0, result.stderr
    settings = (tmp_path / "html" / "settings.html").read_text()
    assert "kinto_emailer.max_emails_per_hour" in settings


def edited_docs(tmp_path, page, old, new):
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    # CHANGELOG.rst is included from the parent directory.
    shutil.copy(DOCS.parent / "CHANGELOG.rst", tmp_path / "CHANGELOG.rst")
    text = (source / page).read_text()
    assert old in text
    (source / page).write_text(text.replace(old, new))
    return source


def test_a_setting_without_a_description_fails_the_build(tmp_path):
    source = edited_docs(
        tmp_path,
        "settings.rst",
        "   kinto_emailer.max_emails_per_hour\n"
        "      Emails a bucket may put in the outbox in an hour; 0: no limit.\n",
        "",
    )
    result = build(source, tmp_path, "dummy")
    assert result.returncode != 0
    assert "kinto_emailer.max_emails_per_hour has no description" in result.stderr


def test_a_description_of_a_hook_field_that_does_not_exist_fails_the_build(tmp_path):
    source = edited_docs(tmp_path, "hooks.rst", "   notify_author\n", "   notify_authors\n")
    result = build(source, tmp_path, "dummy")
    assert result.returncode != 0
    assert "notify_authors is described but the code has no such key" in result.stderr
    assert "notify_author has no description" in result.stderr
