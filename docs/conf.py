"""Sphinx configuration for aiomsg's documentation site: ``python3 dev.py docs``.

The pages are Markdown (myst-parser); the reference is autodoc from the docstrings.
The build runs with warnings as errors and needs no network.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

from sphinx.errors import ExtensionError
from sphinx.util import logging

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
    "sphinx_copybutton",
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

# The copy button copies what to type: not the >>> and ... prompts, not the output lines.
copybutton_exclude = ".linenos, .gp, .go"

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


# The performance page's tables: a ```{perf-table} NAME``` block becomes the Markdown table that
# benchmarks/plot.py makes from the JSON in docs/_static/perf, the JSON its charts are drawn
# from, so a table and its chart always show the same run.
PERF_TABLE = re.compile(r"^```\{perf-table\} ([\w-]+)\n```$", re.MULTILINE)


def _plot_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "_aiomsg_benchmarks_plot", ROOT / "benchmarks" / "plot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _perf_tables(app: object, docname: str, source: list[str]) -> None:
    if "{perf-table}" not in source[0]:
        return
    plot = _plot_module()

    def render(match: re.Match[str]) -> str:
        name = match[1]
        if name not in plot.TABLES:
            raise ExtensionError(f"{docname}: no perf-table {name!r} (benchmarks/plot.py TABLES)")
        return str(plot.table(name)).rstrip("\n")

    source[0] = PERF_TABLE.sub(render, source[0])


# Reference signatures show only public names. A class whose constructor is internal (its
# __init__'s docstring begins "Internal:", e.g. Connection, made by connect() and serve()) is
# shown without arguments, and members documented "Internal:" are left out. A sentinel of a
# private type in a default (Literal[_Unset.UNSET]) is dropped from the annotation. Any other
# private name left in a signature is a warning, so the build fails.
INTERNAL = "Internal:"
PRIVATE_SENTINEL = re.compile(r"~?(?:typing\.)?Literal\[~?(?:[\w.]*\.)?_\w+\.\w+\]\s*\|\s*")
HIDDEN_PREFIX = re.compile(r"~[\w.]*\.")  # "~a.b.C" shows as "C"
PRIVATE_NAME = re.compile(r"(?<!\w)_[A-Za-z]\w*")
log = logging.getLogger(__name__)


def _is_internal(obj: Any) -> bool:
    return (inspect.getdoc(obj) or "").startswith(INTERNAL)


def _public_signature(
    app: object,
    what: str,
    name: str,
    obj: Any,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if what in ("class", "exception") and _is_internal(getattr(obj, "__init__", None)):
        return "", return_annotation
    if signature is None:
        return None
    signature = PRIVATE_SENTINEL.sub("", signature)
    for text in (signature, return_annotation or ""):
        if found := PRIVATE_NAME.findall(HIDDEN_PREFIX.sub("", text)):
            log.warning(f"{name}: private name(s) {sorted(set(found))} in the signature {text}")
    return signature, return_annotation


def _skip_internal(
    app: object, what: str, name: str, obj: Any, skip: bool, options: object
) -> bool | None:
    return True if _is_internal(obj) else None


def setup(app: Any) -> None:
    app.connect("source-read", _changelog_placeholder)
    app.connect("source-read", _perf_tables)
    app.connect("autodoc-process-signature", _public_signature)
    app.connect("autodoc-skip-member", _skip_internal)
