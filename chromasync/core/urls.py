"""Service URLs as they may be shown: in logs, error messages and ``chromasync status``.

A Redis URL may carry a password (``redis://:secret@host``); every place that
prints a URL shows it through :func:`redact_url`, so no secret reaches a log.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: Shown instead of a URL that cannot be parsed: its text could hold anything.
UNPARSEABLE = "<unparseable URL>"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``; the user name and host stay."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return UNPARSEABLE
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
