"""What every framing promises besides encoding and decoding: it is a frozen value."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import aiomsg
from aiomsg.framing import Framing

from .strategies import CASES


def every_framing() -> list[Framing]:
    return [case.framing for case in CASES] + [aiomsg.framing.UntilEOF()]


@pytest.mark.parametrize("framing", every_framing(), ids=repr)
def test_framings_are_frozen(framing: Framing) -> None:
    decoder = framing.decoder()
    names = [n for cls in type(framing).__mro__ for n in getattr(cls, "__slots__", ())]
    assert "max_size" in names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # reading Lines.delimiter
        for name in names:
            before = getattr(framing, name)
            with pytest.raises(AttributeError, match="immutable"):
                setattr(framing, name, 3)
            with pytest.raises(AttributeError, match="immutable"):
                delattr(framing, name)
            assert getattr(framing, name) is before
    with pytest.raises(AttributeError, match="immutable"):
        framing.new_attribute = 1  # type: ignore[attr-defined]
    del decoder


def test_the_issue_example_cannot_happen() -> None:
    # Changing max_size after a decoder was made used to make C and Python disagree.
    framing = aiomsg.LengthPrefixed(4)
    decoder = framing.decoder()
    with pytest.raises(AttributeError, match="LengthPrefixed is immutable: cannot set 'max_size'"):
        framing.max_size = 3
    assert decoder.feed(b"\0\0\0\5hello") == [b"hello"]


def test_type_prefixed_table_is_read_only() -> None:
    framing = aiomsg.TypePrefixed({1: 2})
    with pytest.raises(TypeError):
        framing.table[2] = 3  # type: ignore[index]
    assert framing.decoder().feed(b"\x01ab") == [b"\x01ab"]


@pytest.mark.parametrize("framing", every_framing(), ids=repr)
def test_framings_are_equal_by_value_with_a_matching_hash(framing: Framing) -> None:
    twin = eval(repr(framing), vars(aiomsg.framing))  # repr shows every parameter
    assert twin == framing
    assert hash(twin) == hash(framing)
    assert len({twin, framing}) == 1


def test_framings_differ_by_any_parameter_and_by_class() -> None:
    distinct = [
        aiomsg.LengthPrefixed(4),
        aiomsg.LengthPrefixed(2),
        aiomsg.LengthPrefixed(4, "little"),
        aiomsg.LengthPrefixed(4, max_size=10),
        aiomsg.Delimited(b"\n"),
        aiomsg.Lines(),
        aiomsg.Lines(newline=b"\r\n"),
        aiomsg.Netstring(),
        aiomsg.Varint(),
        aiomsg.FixedLength(7),
        aiomsg.FixedLength(8),
        aiomsg.TypePrefixed({1: 2}),
        aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(2)}),
        aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(4)}),
    ]
    assert len(set(distinct)) == len(distinct)
    for a in distinct:
        assert [b for b in distinct if b == a] == [a]
    assert aiomsg.LengthPrefixed(4) != "LengthPrefixed(4)"


# The framing package in layers: each module imports only from the layers below it.
LAYERS = [
    ["_accelerated"],
    ["_contract"],
    ["_body"],
    ["_header"],
    [
        "ascii_length",
        "delimited",
        "fixed_length",
        "length_field",
        "length_prefixed",
        "netstring",
        "proxy_protocol",
        "type_prefixed",
        "until_eof",
        "varint",
    ],
    ["recipes", "spec", "switch"],
    ["__init__"],
]


def test_framing_modules_import_only_from_the_layers_below() -> None:
    package = Path(aiomsg.framing.__file__).parent
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    assert set(level) == {p.stem for p in package.glob("*.py")}
    for name, depth in level.items():
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                target = (node.module or node.names[0].name).split(".")[0]
                assert level[target] < depth, f"{name} imports {target}, a layer above it"


HEADERS = {
    "LengthPrefixed(4)": (aiomsg.LengthPrefixed(4), b"\x00\x00\x00\x03"),
    "Netstring": (aiomsg.Netstring(), b"3:"),
    "Varint": (aiomsg.Varint(), b"\x03"),
    "AsciiLengthPrefixed(5)": (aiomsg.AsciiLengthPrefixed(5), b"00003"),
}


@pytest.mark.parametrize("pure_python", [False, True], ids=["fastest", "pure Python"])
@pytest.mark.parametrize("framing, header", HEADERS.values(), ids=HEADERS.keys())
def test_a_parsed_header_counts_as_buffered(
    framing: Framing, header: bytes, pure_python: bool
) -> None:
    """A complete header and no body yet is a message in progress: the fronts' message
    timeout starts on ``buffered``, and EOF there is an incomplete message."""
    decoder = framing.decoder(pure_python=pure_python)
    assert decoder.feed(header) == []
    assert decoder.buffered == len(header)
    assert decoder.feed(b"a") == [] and decoder.buffered == len(header) + 1
    with pytest.raises(aiomsg.IncompleteMessageError) as caught:
        decoder.feed_eof()
    assert caught.value.partial == header + b"a"
