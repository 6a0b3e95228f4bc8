"""Sphinx configuration for aiomsg's documentation site: ``python3 dev.py docs``.

The pages are Markdown (myst-parser); the reference is autodoc from the docstrings.
The build runs with warnings as errors and needs no network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # aiomsg itself, when it is not installed

import aiomsg  # noqa: E402

project = "aiomsg"
author = "aiomsg developers"
copyright = "aiomsg developers, MIT licence"
release = aiomsg.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: `(label)=` targets, ```{directive}``` blocks, and anchors for headings so that
# the pages' links such as asyncio.md#heartbeat-opt-in resolve.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Code blocks without a language are diagrams and trees: no highlighting, no lexer warning.
highlight_language = "none"

# The reference: signatures as written, types in the signature, members in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
# The docstrings use Google-style sections ("Raises:", "Args:").
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Links to other projects' docs (Python, anyio, trio) would need intersphinx, which downloads
# their objects.inv when the site is built, and the build must work offline. So intersphinx is
# off by default and references to the standard library, anyio or trio render as code without a
# link (nitpicky mode stays off, so they do not warn). AIOMSG_DOCS_INTERSPHINX=1 turns it on
# where the network is open.
if os.environ.get("AIOMSG_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "anyio": ("https://anyio.readthedocs.io/en/stable", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
    }

html_theme = "furo"
html_title = f"aiomsg {release}"
html_show_sourcelink = False

# The changelog page includes ../CHANGELOG.md; until that file exists the page says so instead
# of failing the build.
CHANGELOG = ROOT / "CHANGELOG.md"
CHANGELOG_PLACEHOLDER = """# Changelog

This page will show `CHANGELOG.md` from the root of the repository, what changed in each
release, once that file exists.
"""


def _changelog_placeholder(app: object, docname: str, source: list[str]) -> None:
    if docname == "changelog" and not CHANGELOG.exists():
        source[0] = CHANGELOG_PLACEHOLDER


def setup(app: Any) -> None:
    app.connect("source-read", _changelog_placeholder)
