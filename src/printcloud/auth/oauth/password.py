"""The resource owner password credentials grant (RFC 6749 §4.3), for the platform's own
print service only: how an IPP client's HTTP Basic credentials (issue 14) become a
token of the user, checked against the tenant's directory.

An operating system's print dialog can send a user name and password (HTTP Basic,
RFC 7617) but no OAuth token. The print service never sees the directory: it passes
the credentials here, with the queue's tenant (`tenant`, an extension parameter,
RFC 6749 §8.2: the service client lives in the system tenant), and gets a token of
that user, or `invalid_grant`. The directory is the same one the card registration
checks (seed 004, `cards.directory_user`: built-in users or LDAP).

Safety: only the platform's print service client may use the grant (for any other
client it does not exist: `unsupported_grant_type`, and the issuer's metadata does
not list it); attempts count on the
same per-account limiter as the sign-in page (`login`, key issuer:tenant:user), so
a password cannot be guessed faster through IPP than through the page; an unknown
tenant costs the same password-hash time as a known one and answers the same.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from sqlalchemy import select

from printcloud.core import crypto

from .. import cards
from ..models import Tenant
from .call import current, current_db
from .views import ScopeMixin

PASSWORD_GRANT = "password"  # noqa: S105 - RFC 6749's grant name, not a secret
REFUSED = "the directory refused that user name or password"


class PasswordGrant(ScopeMixin, BaseGrant, TokenEndpointMixin):
    """RFC 6749 §4.3 with `tenant`: a platform service asks for a token of a tenant's
    user whose directory credentials it was given (HTTP Basic at an IPP queue)."""

    GRANT_TYPE = PASSWORD_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if (
            client.kind != "service"
            or not client.row.tenant.is_system
            or not client.check_grant_type(self.GRANT_TYPE)
        ):
            # for any other client the grant does not exist (the answer it always had)
            refused = UnsupportedGrantTypeError(self.GRANT_TYPE)
            refused.description = refused.get_error_description()
            raise refused
        self.request.client = client
        self.validate_requested_scope()
        form = self.request.form
        tenant_id = str(form.get("tenant") or "")
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        if not tenant_id or not username or not password:
            raise InvalidRequestError("'tenant', 'username' and 'password' are required")
        if len(tenant_id) > 64 or len(username) > 128 or len(password) > 1024:
            raise InvalidRequestError("'tenant', 'username' or 'password' is too long")
        call = current()
        assert call.login is not None and call.box is not None
        key = f"{call.issuer}:{tenant_id}:{username.lower()}"
        call.login.check(key)
        db = current_db()
        tenant = db.scalar(
            select(Tenant).where(Tenant.issuer == call.issuer, Tenant.tenant_id == tenant_id)
        )
        if tenant is None:
            crypto.verify_password(None, password)  # the same time as for a known tenant
            call.login.hit(key)
            raise InvalidGrantError(REFUSED)
        try:
            user, _ = cards.directory_user(
                db,
                tenant=tenant,
                username=username,
                password=password,
                box=call.box,
                egress=call.settings.egress_policy,
            )
        except cards.InvalidCredentials as exc:
            db.rollback()
            call.login.hit(key)
            raise InvalidGrantError(REFUSED) from exc
        call.login.reset(key)
        self.request.user = user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(
            user=self.request.user, scope=self.request.payload.scope, include_refresh_token=False
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
