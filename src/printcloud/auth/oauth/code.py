"""Authorization code grant with PKCE: RFC 6749 §4.1 and RFC 7636 (S256 only).

`state` is required; public clients must send a `code_challenge`. A code is spent
by one conditional UPDATE, and a replayed code revokes the token family it issued
(RFC 6749 §4.1.2, §10.5), which Authlib does not do.
"""

from __future__ import annotations

from datetime import timedelta

from authlib.oauth2 import rfc7636
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from sqlalchemy import select, update

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.logs import get_logger

from .. import service
from ..models import AuthorizationCode, User
from .call import current, current_db, rowcount
from .request import Request
from .views import ClientView, ScopeMixin

log = get_logger("auth.oauth")


class S256Challenge(rfc7636.CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"


class CodeGrant(ScopeMixin, AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        data = self.request.payload.data
        if not data.get("state"):
            raise InvalidRequestError("'state' is required", redirect_uri=redirect_uri)
        if self.request.client.kind == "public" and not data.get("code_challenge"):
            raise InvalidRequestError(
                "public clients must send a PKCE 'code_challenge' (S256)", redirect_uri=redirect_uri
            )
        if data.get("code_challenge") and data.get("code_challenge_method", "plain") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        return redirect_uri

    def save_authorization_code(self, code: str, request: Request) -> None:
        call = current()
        user: User = request.user
        data = request.payload.data
        current_db().add(
            AuthorizationCode(
                code_digest=crypto.token_digest(code),
                tenant_pk=user.tenant_pk,
                client_pk=request.client.row.pk,
                user_pk=user.pk,
                redirect_uri=data.get("redirect_uri") or "",
                scope=request.scope or "",
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method")
                if data.get("code_challenge")
                else None,
                expires_at=utcnow() + timedelta(seconds=call.settings.code_ttl),
            )
        )

    def query_authorization_code(self, code: str, client: ClientView) -> AuthorizationCode | None:
        db = current_db()
        row = db.get(AuthorizationCode, crypto.token_digest(code))
        if row is None or row.client_pk != client.row.pk:
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a replayed code revokes what it issued.
            if row.family_id:
                service.revoke_family(db, family_id=row.family_id)
            log.warning(
                "authorization code replayed", extra={"fields": {"client_id": client.row.client_id}}
            )
            return None
        if row.expires_at <= utcnow():
            return None
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Spent by one conditional UPDATE: of two concurrent redemptions that both read the
        # code as unused, only one changes the row; the other is a replay (RFC 6749 §4.1.2).
        db = current_db()
        family = self.request.family_id
        spent = db.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_digest == authorization_code.code_digest,
                AuthorizationCode.used_at.is_(None),
            )
            .values(used_at=utcnow(), family_id=family)
            .execution_options(synchronize_session=False)
        )
        if rowcount(spent) == 1:
            return
        winner = db.scalar(
            select(AuthorizationCode.family_id).where(
                AuthorizationCode.code_digest == authorization_code.code_digest
            )
        )
        for revoked in {winner, family} - {None}:
            service.revoke_family(db, family_id=str(revoked))
        log.warning(
            "authorization code redeemed twice at once; what it issued is revoked",
            extra={"fields": {"client_id": self.request.client.row.client_id}},
        )
        raise InvalidGrantError("the authorization code was already used")

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = current_db().get(User, authorization_code.user_pk)
        return None if user is None or user.disabled else user

    # Authlib reads these off the code row.
    def get_authorization_code_challenge(
        self, code: AuthorizationCode
    ) -> str | None:  # pragma: no cover
        return code.code_challenge
