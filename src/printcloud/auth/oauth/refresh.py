"""Refresh token grant with rotation and reuse detection (RFC 6749 §6, §10.4;
OAuth 2.0 Security BCP §4.14).

Every use rotates the refresh token, by one conditional UPDATE. A rotated token
used again means someone holds a copy: its whole family is revoked. Authlib has
neither rotation's single use nor the reuse detection.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant
from sqlalchemy import update
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.logs import get_logger

from .. import service
from ..models import RefreshToken, Tenant, User
from .call import current, current_db, rowcount
from .views import ClientView, ScopeMixin

log = get_logger("auth.oauth")


def _refresh_reused(db: Session, row: RefreshToken) -> None:
    """Reuse of a rotated refresh token: someone holds a copy. Revoke the family."""
    service.revoke_family(db, family_id=row.family_id)
    service.audit(
        db,
        issuer=current().issuer,
        tenant=db.get(Tenant, row.tenant_pk),
        actor="system",
        action="token.refresh_reuse",
        target=row.family_id[:12],
    )
    log.warning("refresh token reused; family revoked")


class RefreshGrant(ScopeMixin, RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        db = current_db()
        if len(refresh_token) > 512:
            return None
        row = db.get(RefreshToken, crypto.token_digest(refresh_token))
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        if row.rotated_at is not None:
            _refresh_reused(db, row)
            return None
        return row

    def _validate_request_token(self, client: ClientView) -> RefreshToken:
        raw = self.request.form.get("refresh_token")
        if raw is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        token = self.authenticate_refresh_token(raw)
        if token is None or token.client_pk != client.row.pk:
            raise InvalidGrantError("the refresh token is invalid, expired, revoked or reused")
        self.request.family_id = token.family_id
        return token

    def authenticate_user(self, refresh_token: RefreshToken) -> User | ClientView | None:
        if refresh_token.user_pk is None:
            return self.request.client  # a client's own refresh token
        user = current_db().get(User, refresh_token.user_pk)
        return None if user is None or user.disabled else user

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # Rotated by one conditional UPDATE, after the new pair was written in the same
        # transaction: of two concurrent redemptions that both read the token as unused,
        # only one changes the row, and the other is reuse (the whole family is revoked,
        # the new pair it just wrote included).
        db = current_db()
        rotated = db.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_digest == refresh_token.token_digest,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(rotated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if rowcount(rotated) == 1:
            return
        _refresh_reused(db, refresh_token)
        raise InvalidGrantError("the refresh token is invalid, expired, revoked or reused")
