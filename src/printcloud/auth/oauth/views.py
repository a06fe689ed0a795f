"""What Authlib sees of our rows: clients, tokens, and the scope rules every grant shares.

The scope check (RFC 6749 §3.3) adds our own rule: the platform scopes (`admin`)
only for the platform's own service clients. `TokenParams` is the `token`
parameter of introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1).
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError

from printcloud.core import crypto
from printcloud.core.db import utcnow

from .. import service
from ..store import ClientSnapshot, TenantRef
from .request import Request


class ClientView(ClientMixin):
    def __init__(self, row: ClientSnapshot) -> None:
        self.row = row

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def tenant(self) -> TenantRef:
        return self.row.tenant

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.row.redirect_uris[0] if len(self.row.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.row.scope.split()
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, no prefixes

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.row.secret_digest or len(client_secret) > 512:
            return False
        return crypto.equal(self.row.secret_digest, crypto.token_digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.disabled:
            return False
        if self.row.kind == "public":
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class TokenView:
    """A token as Authlib's introspection and revocation endpoints see it."""

    def __init__(self, info: service.TokenInfo) -> None:
        self.info = info

    def check_client(self, client: ClientView) -> bool:
        return self.info.client_pk == client.row.pk

    def get_scope(self) -> str:
        return self.info.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.info.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.info.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return not self.info.active


def check_scope(client: ClientView | None, scope: str | None) -> None:
    if not scope:
        return
    for part in scope.split():
        if part not in service.SCOPES:
            raise InvalidScopeError(f"unknown scope '{part}'")
        if client is not None and part in service.PLATFORM_SCOPES and client.kind != "service":
            raise InvalidScopeError(f"only the platform's own clients may request scope '{part}'")
        if client is not None and part not in client.row.scope.split():
            raise InvalidScopeError(f"the client may not request scope '{part}'")


class ScopeMixin:
    request: Request

    def validate_requested_scope(self) -> None:
        check_scope(self.request.client, self.request.payload.scope)


class TokenParams:
    """The `token` parameter of introspection and revocation. An unknown
    `token_type_hint` is ignored (RFC 7009 §2.1, RFC 7662 §2.1), where Authlib
    answers 401 unsupported_token_type."""

    def check_params(self, request: Request, client: ClientView) -> None:
        if "token" not in request.form:
            raise InvalidRequestError("'token' is required")
