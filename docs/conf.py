"""Sphinx configuration of kinto-emailer's documentation (make docs)."""

import importlib.metadata
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "kinto-emailer"
author = "Mozilla Services and contributors"
release = importlib.metadata.version("kinto-emailer")
version = release
extensions = ["emailer_reference"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"kinto-emailer {release}"
# Code blocks are shell, ini, JSON: no Python highlighting by default.
highlight_language = "none"
