"""Secrets out of what is printed: :func:`redact_url` for every banner, log line and error.

A URL such as ``redis://user:secret@host:6379/0`` carries a password; printed as is, it
lands in every log collector. Everything that shows a URL shows ``redact_url(url)``.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# scheme://[user][:password]@rest: the password is what lies between the first ":" of the
# userinfo and the last "@" before the path.
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``.

    ``redis://user:secret@host:6379/0`` becomes ``redis://user:***@host:6379/0``,
    ``redis://:secret@host`` becomes ``redis://:***@host``, and a ``password=`` query
    parameter (redis' ``unix://`` URLs) becomes ``password=***``. A URL without a
    password comes back unchanged.
    """
    match = _USERINFO.match(url)
    if match is not None and ":" in match["userinfo"]:
        user = match["userinfo"].partition(":")[0]
        url = f"{match['head']}{user}:***@{url[match.end() :]}"
    return _QUERY_PASSWORD.sub(r"\g<key>***", url)
