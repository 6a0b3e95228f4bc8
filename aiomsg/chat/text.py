"""Members' text is untrusted: :func:`neutralise` makes it safe to print on a terminal.

A line relayed as sent could carry terminal escape sequences (an OSC 52 clipboard
write, a window title, clear-screen, cursor moves that rewrite earlier lines or forge
``bob: ...``), hidden text, a BEL flood, C1 controls or bidi overrides that reorder
what a reader sees. Each such character is replaced by a visible marker, so the text
stays readable and nothing reaches a terminal as a command:

* C0 controls and DEL in caret notation: ESC -> ``^[``, BEL -> ``^G``, CR -> ``^M``,
  DEL -> ``^?`` (TAB is kept: it only moves the cursor right). With ESC gone, the rest
  of an escape sequence is plain printable text;
* C1 controls (U+0080-U+009F) as ``\\x9b``-style escapes;
* bidi controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and the
  line and paragraph separators (U+2028, U+2029) as ``<U+202E>``.

Plain text (printable characters, any script, emoji) comes back unchanged and is not
copied.
"""

from __future__ import annotations

import re

__all__ = ["neutralise"]

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _marker(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def neutralise(text: str) -> str:
    """Return ``text`` with every terminal control character replaced by a visible marker.

    Never raises; idempotent (a marker is printable text).
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_marker, text)
