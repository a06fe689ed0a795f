"""Tokens: seed 001's `local_user` parameter, lookup, revocation and the purge of expired rows."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest

from .. import store
from ..models import AccessToken, AuthorizationCode, AuthSession, DeviceGrant, RefreshToken
from ..store import TokenInfo

_LOCAL_USER_MAX = 2048


# -- tokens -------------------------------------------------------------------


def parse_local_user(raw: str | None) -> dict[str, Any] | None:
    """Seed 001: the `local_user` parameter, a JSON object with at least `id`."""
    if raw is None or raw == "":
        return None
    if len(raw) > _LOCAL_USER_MAX:
        raise InvalidRequest(
            f"local_user must be at most {_LOCAL_USER_MAX} bytes", field="local_user"
        )
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest("local_user must be a JSON object", field="local_user") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("local_user must be a JSON object", field="local_user")
    ident = value.get("id")
    if not isinstance(ident, str) or not ident.strip() or len(ident) > 256:
        raise InvalidRequest("local_user.id must be a non-empty string", field="local_user")
    return value


def lookup_token(
    db: Session, *, issuer: str, token: str, hint: str | None = None
) -> TokenInfo | None:
    return store.lookup_token(db.connection(), issuer=issuer, token=token, hint=hint)


def revoke_family(db: Session, *, family_id: str) -> None:
    now = utcnow()
    db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.execute(
        update(AccessToken)
        .where(AccessToken.family_id == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_token(db: Session, *, info: TokenInfo) -> None:
    if info.family_id and info.kind == "refresh_token":
        revoke_family(db, family_id=info.family_id)
        return
    model = AccessToken if info.kind == "access_token" else RefreshToken
    db.execute(
        update(model)
        .where(model.token_digest == info.digest, model.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def purge_expired(db: Session, *, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete tokens, codes, sessions and device grants expired for longer than `older_than`."""
    cutoff = utcnow() - older_than
    total = 0
    for model, column in (
        (AccessToken, AccessToken.expires_at),
        (RefreshToken, RefreshToken.expires_at),
        (AuthorizationCode, AuthorizationCode.expires_at),
        (AuthSession, AuthSession.expires_at),
        (DeviceGrant, DeviceGrant.expires_at),
    ):
        total += db.execute(delete(model).where(column < cutoff)).rowcount or 0  # type: ignore[attr-defined]
    return total
