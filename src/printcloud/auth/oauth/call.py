"""The shared glue of one synchronous Authlib call: what it works with, in a context variable.

Authlib is synchronous: each call runs in a worker thread with its own DB session
(or, on the hot path of client credentials, none), held here for the duration of
the call so that grants and endpoints reach it without threading it through
Authlib's signatures.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.ratelimit import Limiter
from printcloud.core.settings import Settings

from .. import cards, store


@dataclass
class Call:
    """What one synchronous Authlib call works with. Without `db` (the hot path
    of client credentials) new token rows are collected in `pending_*`."""

    db: Session | None
    issuer: str
    settings: Settings
    request: OAuth2Request | None = None
    #: The hot-path reader for read-only steps (introspection) run without a session.
    reader: store.HotReader | None = None
    pending_access: list[dict[str, Any]] = field(default_factory=list)
    pending_refresh: list[dict[str, Any]] = field(default_factory=list)
    #: Seed 004's lockouts, the card-ID hash key and the box that opens the directory's
    #: sealed password; card logins of the hot path (written with the token rows).
    cards: cards.CardLimits | None = None
    card_key: bytes = b""
    box: SecretBox | None = None
    pending_logins: list[store.Login] = field(default_factory=list)
    #: The sign-in page's per-account limiter, which the password grant counts on too.
    login: Limiter | None = None


class NeedsSession(Exception):
    """The hot path cannot answer this request alone: run it again with a session."""


_call: contextvars.ContextVar[Call] = contextvars.ContextVar("printcloud_oauth_call")


def current() -> Call:
    return _call.get()


def current_db() -> Session:
    db = _call.get().db
    if db is None:
        raise RuntimeError("this OAuth step needs a database session")
    return db


def bind(call: Call) -> contextvars.Token[Call]:
    return _call.set(call)


def unbind(token: contextvars.Token[Call]) -> None:
    _call.reset(token)


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
