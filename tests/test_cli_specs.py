"""Bad framing specs: one wording for every kind. ``parse_framing`` raises ``SpecError``
whose reason names the part that is wrong and ends with the form expected; the command
line shows it as one usage error, ``bad --framing 'SPEC': REASON``, exit status 2."""

from __future__ import annotations

import pytest

import aiomsg
import aiomsg.cli
from aiomsg.framing import parse_framing
from aiomsg.framing.spec import SpecError

from .test_cli import run_cli

FIELD = "field:WIDTH[:little][,offset=N][,adjust=N][,strip=N|field][,trailer=HEX]"
ALL = (
    "lines, delimited:TEXT, length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, "
    f"varint, eos, typed:TYPE=BODY,..., {FIELD}"
)
TYPED = "typed:TYPE=BODY,..., e.g. typed:1=8,2=length:2"
BODY = "BODY: a size, or length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, varint"

BAD_SPECS = [
    ("", f"no framing named; expected one of {ALL}"),
    ("morse", f"unknown framing 'morse'; expected one of {ALL}"),
    ("lines:1", "lines takes no parameter (lines)"),
    ("netstring:x", "netstring takes no parameter (netstring)"),
    ("varint:7", "varint takes no parameter (varint)"),
    ("eos:", "eos takes no parameter (eos)"),
    ("delimited", "delimited needs TEXT (delimited:TEXT)"),
    ("delimited:", "delimited needs TEXT (delimited:TEXT)"),
    (
        "delimited:\\x",
        "TEXT has a bad escape: invalid \\x escape at position 0 "
        "(delimited:TEXT, escapes as in '\\0' or '\\r\\n')",
    ),
    ("length", "length needs WIDTH (length:WIDTH[:little])"),
    ("length:", "length needs WIDTH (length:WIDTH[:little])"),
    ("length:x", "WIDTH must be a whole number, not 'x' (length:WIDTH[:little])"),
    ("length:3", "WIDTH must be 1, 2, 4 or 8, not 3 (length:WIDTH[:little])"),
    ("length:16", "WIDTH must be 1, 2, 4 or 8, not 16 (length:WIDTH[:little])"),
    (
        "length:4:middle",
        "the byte order must be big or little, not 'middle' (length:WIDTH[:little])",
    ),
    ("length:4:little:x", "too many parameters for length (length:WIDTH[:little])"),
    ("ascii", "ascii needs DIGITS (ascii:DIGITS)"),
    ("ascii:x", "DIGITS must be a whole number, not 'x' (ascii:DIGITS)"),
    ("ascii:0", "DIGITS must be 1-20, not 0 (ascii:DIGITS)"),
    ("ascii:21", "DIGITS must be 1-20, not 21 (ascii:DIGITS)"),
    ("ascii:5:5", "too many parameters for ascii (ascii:DIGITS)"),
    ("fixed", "fixed needs SIZE (fixed:SIZE)"),
    ("fixed:1.5", "SIZE must be a whole number, not '1.5' (fixed:SIZE)"),
    ("fixed:0", "SIZE must be at least 1, not 0 (fixed:SIZE)"),
    ("typed", f"typed needs at least one TYPE=BODY entry ({TYPED})"),
    ("typed:", f"typed needs at least one TYPE=BODY entry ({TYPED})"),
    ("typed:1", f"entry '1' is not TYPE=BODY ({TYPED})"),
    ("typed:1=", f"entry '1=' is not TYPE=BODY ({TYPED})"),
    ("typed:x=1", f"TYPE must be a whole number, not 'x' ({TYPED})"),
    ("typed:256=1", f"TYPE must be 0-255, not 256 ({TYPED})"),
    ("typed:1=8,1=2", f"type 1 is given twice ({TYPED})"),
    ("typed:1=lines", f"type 1: 'lines' does not announce its length ({BODY})"),
    ("typed:1=eos", f"type 1: 'eos' does not announce its length ({BODY})"),
    ("typed:1=morse", f"type 1: unknown body 'morse' ({BODY})"),
    ("typed:1=typed:2=3", f"type 1: a typed body cannot be typed again ({TYPED})"),
    ("typed:1=length:3", "type 1: WIDTH must be 1, 2, 4 or 8, not 3 (length:WIDTH[:little])"),
    ("typed:1=fixed:0", "type 1: SIZE must be at least 1, not 0 (fixed:SIZE)"),
    ("field", f"field needs WIDTH, then options after commas ({FIELD})"),
    ("field:", f"field needs WIDTH, then options after commas ({FIELD})"),
    ("field:9", f"length_width must be 1, 2, 3, 4, 8 or 'varint', not 9 ({FIELD})"),
    (
        "field:4,bogus=1",
        f"unknown option 'bogus'; use offset=, adjust=, strip= or trailer= ({FIELD})",
    ),
]


@pytest.mark.parametrize(
    ("spec", "framing"),
    [
        ("field:4", aiomsg.LengthField(4)),
        (
            "field:4,offset=1,adjust=-4,strip=field",
            aiomsg.LengthField(4, length_offset=1, length_adjustment=-4, strip="field"),
        ),
        ("FIELD:3:little,adjust=1", aiomsg.LengthField(3, length_adjustment=1, byteorder="little")),
        ("field:varint,offset=1,strip=field", aiomsg.recipes.mqtt()),
    ],
)
def test_length_field_specs_name_length_fields(spec: str, framing: aiomsg.Framing) -> None:
    assert parse_framing(spec) == framing


@pytest.mark.parametrize(("spec", "reason"), BAD_SPECS)
def test_parse_framing_says_which_part_is_wrong_and_what_is_expected(
    spec: str, reason: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_framing(spec)
    assert (info.value.spec, info.value.reason) == (spec, reason)
    assert str(info.value) == f"bad framing spec {spec!r}: {reason}"
    assert isinstance(info.value, ValueError)  # what parse_framing always raised


@pytest.mark.parametrize(("spec", "reason"), BAD_SPECS)
def test_the_command_line_shows_one_usage_error_per_bad_spec(
    spec: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the same parser the command runs) for the whole table; the
    # subprocess tests below run the real command for each command with --framing.
    with pytest.raises(SystemExit) as info:
        aiomsg.cli.main(["connect", "127.0.0.1", "7", "--framing", spec])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == f"aiomsg connect: error: bad --framing {spec!r}: {reason}"


def test_a_spec_over_max_size_says_so() -> None:
    with pytest.raises(SpecError) as info:
        parse_framing("fixed:10", max_size=5)
    assert info.value.reason == "size=10 is over max_size=5 (fixed:SIZE)"


@pytest.mark.parametrize(
    ("command", "spec", "reason"),
    [
        (["connect", "127.0.0.1", "7"], "delimited:", "delimited needs TEXT (delimited:TEXT)"),
        (["request", "127.0.0.1", "7"], "fixed:0", "SIZE must be at least 1, not 0 (fixed:SIZE)"),
        (["serve", "127.0.0.1", "0"], "typed:1", f"entry '1' is not TYPE=BODY ({TYPED})"),
    ],
)
def test_every_command_with_framing_words_a_bad_spec_alike(
    command: list[str], spec: str, reason: str
) -> None:
    out = run_cli(*command, "--framing", spec)
    assert (out.returncode, out.stdout) == (2, b"")
    lines = out.stderr.decode().splitlines()
    assert lines[0].startswith(f"usage: aiomsg {command[0]} ")
    assert lines[-1] == f"aiomsg {command[0]}: error: bad --framing {spec!r}: {reason}"
    assert "Traceback" not in out.stderr.decode()
