"""The Authlib authorization server of one issuer: its grants and endpoints,
token generation and the storage of issued tokens (RFC 6749 §5.1).

Set lifetimes explicitly (Authlib's client-credentials default is 10 days). On the
hot path (no DB session) the new token rows are handed to the group-commit writer
instead of being inserted here. A client set to JWT access tokens gets RFC 9068
tokens (`rfc9068`), which are signed, not stored: only their refresh tokens have rows.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749.errors import InvalidRequestError, UnsupportedGrantTypeError
from sqlalchemy import insert

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings

from .. import service
from ..models import AccessToken, RefreshToken, User
from ..store import JWT_FORMAT, ClientCache
from .call import current
from .card import CardGrant
from .client_credentials import CredentialsGrant
from .code import CodeGrant, S256Challenge
from .device import DeviceAuthorization, DeviceGrantType
from .introspection import Introspection
from .metadata import server_metadata
from .password import PasswordGrant
from .refresh import RefreshGrant
from .request import Request
from .revocation import Revocation
from .rfc9068 import KeyRing, issue
from .token_exchange import TokenExchangeGrant
from .views import ClientView, check_scope

log = get_logger("auth.oauth")


class IssuerServer(rfc6749.AuthorizationServer):
    """The Authlib authorization server of one issuer."""

    def __init__(
        self, *, issuer: str, settings: Settings, clients: ClientCache, keyring: KeyRing
    ) -> None:
        super().__init__(scopes_supported=list(service.SCOPES))
        self.issuer = issuer
        self.settings = settings
        self.clients = clients
        self.keyring = keyring
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(CredentialsGrant)
        self.register_grant(RefreshGrant)
        self.register_grant(DeviceGrantType)
        self.register_grant(TokenExchangeGrant)
        self.register_grant(CardGrant)
        self.register_grant(PasswordGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)
        self.register_endpoint(DeviceAuthorization)

    def create_token_response(
        self, request: Request | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        # RFC 6749 §5.2: a missing parameter is invalid_request (Authlib: unsupported_grant_type).
        if request is not None and not request.payload.grant_type:
            return self.handle_error_response(
                request, InvalidRequestError("'grant_type' is required")
            )
        result: tuple[int, Any, dict[str, str]] = super().create_token_response(request)
        return result

    def get_token_grant(self, request: Request) -> Any:
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            error.description = (
                f"grant_type {str(request.payload.grant_type)[:100]!r} is not supported"
            )
            raise

    def query_client(self, client_id: str) -> ClientView | None:
        if not client_id or len(client_id) > 128:
            return None
        snapshot = self.clients.get(self.issuer, client_id)
        return ClientView(snapshot) if snapshot is not None and not snapshot.disabled else None

    def validate_requested_scope(self, scope: str | None) -> None:
        call = current()
        client = call.request.client if call.request is not None else None
        check_scope(client, scope)

    def _generate_token(
        self,
        grant_type: str,
        client: ClientView,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        allowed = client.get_allowed_scope(scope)
        if (isinstance(user, User) and not user.is_admin) or client.kind != "service":
            # `admin` acts for the tenant's administrators only, whatever the client may ask,
            # and only through the platform's own clients
            allowed = " ".join(s for s in allowed.split() if s not in service.PLATFORM_SCOPES)
        token: dict[str, Any] = {"token_type": "Bearer"}
        if client.row.access_token_format == JWT_FORMAT:
            request = current().request
            token["access_token"], token["expires_in"] = issue(
                self.keyring,
                settings=self.settings,
                client=client.row,
                user=user if isinstance(user, User) else None,
                scope=allowed,
                local_user=getattr(request, "local_user", None),
                grant_type=grant_type,
            )
        else:
            token["access_token"] = crypto.new_token()
            token["expires_in"] = expires_in or self.settings.access_token_ttl
        token["scope"] = allowed
        if include_refresh_token and client.check_grant_type("refresh_token"):
            token["refresh_token"] = crypto.new_token()
        return token

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        call = current()
        client: ClientView = request.client
        user = request.user if isinstance(request.user, User) else None
        tenant_pk = user.tenant_pk if user is not None else client.row.tenant_pk
        now = utcnow()
        family = request.family_id
        grant_type = request.payload.grant_type or "authorization_code"
        # A code's tokens always get a family, so that a replayed code can revoke them.
        if family is None and ("refresh_token" in token or grant_type == "authorization_code"):
            family = secrets.token_hex(16)
            request.family_id = family
        access: list[dict[str, Any]] = []
        if client.row.access_token_format != JWT_FORMAT:  # a JWT is signed, never stored
            access.append(
                {
                    "token_digest": crypto.token_digest(token["access_token"]),
                    "tenant_pk": tenant_pk,
                    "client_pk": client.row.pk,
                    "user_pk": user.pk if user else None,
                    "local_user": request.local_user,
                    "scope": token.get("scope") or "",
                    "grant_type": grant_type[:64],
                    "issued_at": now,
                    "expires_at": now + timedelta(seconds=int(token["expires_in"])),
                    "revoked_at": None,
                    "family_id": family,
                }
            )
        refresh: list[dict[str, Any]] = []
        if "refresh_token" in token:
            refresh.append(
                {
                    "token_digest": crypto.token_digest(token["refresh_token"]),
                    "family_id": family,
                    "tenant_pk": tenant_pk,
                    "client_pk": client.row.pk,
                    "user_pk": user.pk if user else None,
                    "scope": token.get("scope") or "",
                    "issued_at": now,
                    "expires_at": now + timedelta(seconds=self.settings.refresh_token_ttl),
                    "rotated_at": None,
                    "revoked_at": None,
                }
            )
        if call.db is None:  # hot path: the caller hands the rows to the group-commit writer
            call.pending_access.extend(access)
            call.pending_refresh.extend(refresh)
            return
        if access:
            call.db.execute(insert(AccessToken), access)
        if refresh:
            call.db.execute(insert(RefreshToken), refresh)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth signal", extra={"fields": {"signal": name}})

    def create_oauth2_request(self, request: Request) -> Request:
        current().request = request
        return request

    def create_json_request(self, request: Any) -> Any:  # pragma: no cover - no JSON endpoints
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers)

    def metadata(self) -> dict[str, Any]:
        return server_metadata(self.settings, self.issuer)
