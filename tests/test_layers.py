"""The layers stay apart: no module uses another layer's private names (docs/architecture.md).

A layer is a package directory: ``aiomsg/framing`` (the codecs), ``aiomsg/asyncio`` and
``aiomsg/anyio`` (the fronts), ``aiomsg/chat`` (the example application), and the shared
modules at the top. Inside a layer, modules may share private helpers; across layers only
public names are used. Outside the codec layer, code touches private attributes of ``self``
(or ``cls``) only, never another object's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aiomsg"
MODULES = sorted(PACKAGE.rglob("*.py"))


# The C speedups are the codec layer's, though the extension sits at the package's top
# (it is built as aiomsg._speedups): the one module that loads them may name them.
ALLOWED = {("framing/_accelerated.py", "_speedups")}
# trio's own private name, read on purpose where a call per message cost 45% of the path
# (aiomsg/anyio/_trio_cancel.py says why; test_anyio_checkpoints fails if trio renames it).
FOREIGN_ATTRIBUTES = {
    ("anyio/_trio_cancel.py", "_cancel_status"),
    ("anyio/framed_stream.py", "_cancel_status"),
    # ConnectionFramedStream is the Connection's adapter to anyio's contract: its C
    # iterator takes the messages from the Connection's queue as Connection's own does
    # (a call per message is what it saves), and its aclose() empties that queue.
    ("anyio/on_asyncio.py", "_ready"),
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _layer(path: Path) -> Path:
    return path.parent


def _source(path: Path, node: ast.ImportFrom) -> Path | None:
    """The package directory that ``from ... import`` reads from, for aiomsg's own modules."""
    if node.level == 0:
        if not (node.module or "").startswith("aiomsg"):
            return None
        parts = (node.module or "").split(".")[1:]
        base = PACKAGE
    else:
        parts = (node.module or "").split(".") if node.module else []
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
    target = base.joinpath(*parts)
    return target if target.is_dir() else target.parent


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_layer(path: Path) -> None:
    tree = ast.parse(path.read_text())
    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _source(path, node)
            if source is None or source == _layer(path):
                continue
            offences += [
                f"line {node.lineno}: {alias.name} from {node.module}"
                for alias in node.names
                if _is_private(alias.name)
                and (str(path.relative_to(PACKAGE)), alias.name) not in ALLOWED
            ]
    assert not offences


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if "framing" not in p.relative_to(PACKAGE).parts],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_private_attribute_of_another_object_is_used(path: Path) -> None:
    tree = ast.parse(path.read_text())
    offences = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) in ("super", "type"):
            continue
        if (str(path.relative_to(PACKAGE)), node.attr) in FOREIGN_ATTRIBUTES:
            continue
        offences.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not offences


def test_the_check_sees_an_offence() -> None:
    """The checks above can fail: a private import across layers is found."""
    module = PACKAGE / "chat" / "room.py"
    node = ast.parse("from ..framing._base import _as_bytes").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _source(module, node) == PACKAGE / "framing"
    assert _source(module, node) != _layer(module)
