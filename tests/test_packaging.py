"""The built wheel and sdist carry every file the package reads, and the version is 5.x."""

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

import kinto_emailer


CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGE = CHECKOUT / "kinto_emailer"


def package_files():
    """Every file of the package in the checkout but Python's own caches, as in an archive."""
    found = []
    for path in PACKAGE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            found.append(path.relative_to(CHECKOUT).as_posix())
    return sorted(found)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The archives ``make test`` built (its environment names them), else built here: the
    sdist, then the wheel from it, as ``make dist`` does."""
    wheel, sdist = (
        os.environ.get("KINTO_EMAILER_TEST_WHEEL"),
        os.environ.get("KINTO_EMAILER_TEST_SDIST"),
    )
    if wheel and sdist:
        return Path(wheel), Path(sdist)
    outdir = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(CHECKOUT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel_path] = outdir.glob("*.whl")
    [sdist_path] = outdir.glob("*.tar.gz")
    return wheel_path, sdist_path


def test_the_package_has_files_other_than_python_modules():
    # Without them the tests below would pass on nothing.
    assert [f for f in package_files() if f.endswith(".sql")], package_files()


def test_the_wheel_carries_every_file_of_the_package(dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [f for f in package_files() if f not in names]
    assert not missing, f"{wheel.name} lacks {missing}"


def test_the_sdist_carries_every_file_of_the_package(dist):
    _, sdist = dist
    with tarfile.open(sdist) as archive:
        # Each name is under the sdist's top directory, kinto_emailer-5.0.0.dev0/.
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [f for f in package_files() if f not in names]
    assert not missing, f"{sdist.name} lacks {missing}"
    assert {"README.rst", "CHANGELOG.rst", "config/kinto.ini"} <= names


def test_the_version_succeeds_the_original_plugins_4_0_0():
    version = importlib.metadata.version("kinto-emailer")
    assert kinto_emailer.__version__ == version
    assert Version(version) > Version("4.0.0")
    assert Version(version).major == 5


@pytest.mark.skipif(
    not os.environ.get("KINTO_EMAILER_TEST_INSTALLED"),
    reason="the checkout is imported: make test runs this on the package installed from the wheel",
)
def test_make_test_imports_the_installed_package_and_its_files_are_there():
    installed = Path(kinto_emailer.__file__).resolve().parent
    assert not installed.is_relative_to(PACKAGE)
    for name in package_files():
        relative = Path(name).relative_to("kinto_emailer")
        assert (installed / relative).is_file(), f"{relative} is not installed"
