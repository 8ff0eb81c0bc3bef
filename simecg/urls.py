"""URLs of stores and databases: credentials never leave the process in a message, param or tag."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s]*):(?P<secret>[^@/\s]*)@")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``postgresql://me:***@db/x``); other text unchanged.

    Applied to every URL the suite prints, logs or stores (tracking URI, Optuna storage, mirrors),
    and to error messages that may quote one.
    """
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(url))
