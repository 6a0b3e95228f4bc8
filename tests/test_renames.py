"""Names that misled, renamed: the old ones still work for one release, with a warning."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import aiomsg
from aiomsg import framing


@pytest.mark.parametrize(
    ("old", "new"),
    [("EndOfStream", framing.UntilEOF), ("HeaderFraming", framing.CountedFraming)],
)
def test_old_framing_names_warn_and_give_the_new_class(old: str, new: type) -> None:
    with pytest.warns(DeprecationWarning, match=f"aiomsg.framing.{old} is deprecated; use"):
        value = getattr(framing, old)
    assert value is new
    with pytest.warns(DeprecationWarning, match=old):
        exec(f"from aiomsg.framing import {old}", {})
    assert old not in framing.__all__
    assert new.__name__ in framing.__all__


def test_counted_framing_covers_every_framing_that_counts_its_bodies() -> None:
    counted = [
        aiomsg.LengthPrefixed(4),
        aiomsg.AsciiLengthPrefixed(5),
        aiomsg.Netstring(),
        aiomsg.Varint(),
        aiomsg.FixedLength(3),
        aiomsg.TypePrefixed({1: 2}),
    ]
    assert all(isinstance(f, framing.CountedFraming) for f in counted)
    assert not isinstance(aiomsg.Lines(), framing.CountedFraming)
    assert not isinstance(framing.UntilEOF(), framing.CountedFraming)


def test_until_eof_decodes_the_whole_stream_as_one_message() -> None:
    decoder = framing.UntilEOF().decoder()
    assert decoder.feed(b"every") == []
    assert decoder.feed_eof() == [b"every"]
    assert framing.parse_framing("eos") == framing.UntilEOF()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_lines_says_truthfully_what_it_accepts_and_what_it_sends(newline: bytes) -> None:
    lines = aiomsg.Lines(newline=newline)
    assert lines.endings == (b"\r\n", b"\n")
    assert lines.newline == newline
    assert lines.encode(b"hi") == b"hi" + newline
    assert lines.decoder().feed(b"a\r\nb\n") == [b"a", b"b"]
    with pytest.warns(DeprecationWarning, match="Lines.delimiter is deprecated"):
        assert lines.delimiter == b"\n"


def test_delimited_delimiter_is_not_deprecated() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aiomsg.Delimited(b"\r\n").delimiter == b"\r\n"


def test_importing_aiomsg_warns_about_nothing() -> None:
    # aiomsg's own modules may still import the old names until they move to
    # the new ones: that must not warn users who run with -W error.
    code = """if True:
        import importlib, pkgutil, aiomsg
        for module in pkgutil.walk_packages(aiomsg.__path__, "aiomsg."):
            if module.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(module.name)
            except ModuleNotFoundError as exc:  # an optional extra (prompt_toolkit...)
                if (exc.name or "").startswith("aiomsg"):
                    raise
        print(aiomsg.framing.UntilEOF.__name__)
    """
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "UntilEOF"
