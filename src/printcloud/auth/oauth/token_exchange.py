"""Token exchange: RFC 8693 (§2.1 request, §2.2 response), for seed 000's
browser-session → service-token step (S1102–S1107).

The subject token is a browser's authentication session at this issuer (seed
000's AUTH_ID); delegation (`actor_token`) is not supported.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin

from .. import service
from .call import current, current_db
from .views import ScopeMixin

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN, not a secret
#: subject_token_type for seed 000's AUTH_ID: a browser's authentication session at this issuer.
SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"  # noqa: S105 - a URN, not a secret
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN, not a secret


class TokenExchangeGrant(ScopeMixin, BaseGrant, TokenEndpointMixin):
    """RFC 8693: a trusted client exchanges a browser's authentication session
    (seed 000's AUTH_ID, S1103–S1106) for an access and a refresh token."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        form = self.request.form
        subject, subject_type = form.get("subject_token"), form.get("subject_token_type")
        if not subject or not subject_type:
            raise InvalidRequestError("'subject_token' and 'subject_token_type' are required")
        if subject_type != SESSION_TOKEN_TYPE:
            raise InvalidRequestError(f"subject_token_type must be {SESSION_TOKEN_TYPE}")
        wanted = form.get("requested_token_type")
        if wanted and wanted != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
        if form.get("actor_token"):
            raise InvalidRequestError("delegation with 'actor_token' is not supported")
        self.validate_requested_scope()
        session = service.find_session(current_db(), issuer=current().issuer, session_id=subject)
        # A platform service exchanges any tenant's session; a tenant's client only its own
        # tenant's (as in introspection), and another tenant's looks like an unknown one.
        foreign = session is not None and session.user.tenant_pk != client.row.tenant.pk
        if session is None or (foreign and client.kind != "service"):
            raise InvalidGrantError("the authentication session is unknown, expired or ended")
        self.request.user = session.user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(
            user=self.request.user, scope=self.request.payload.scope, include_refresh_token=True
        )
        token["issued_token_type"] = ACCESS_TOKEN_TYPE
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
