"""Client credentials grant (RFC 6749 §4.4) with the device's local user (seed 001).

A device client may send `local_user`: the token then carries the device's local
user, and introspection answers it (seed 001, "local authentication cooperation").
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant

from printcloud.core.errors import InvalidRequest

from .. import service
from .views import ScopeMixin


class CredentialsGrant(ScopeMixin, ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        raw = self.request.form.get("local_user")
        if raw is not None:
            if self.request.client.kind != "device":
                raise InvalidRequestError("only device clients may send 'local_user'")
            try:
                self.request.local_user = service.parse_local_user(raw)
            except InvalidRequest as exc:
                raise InvalidRequestError(exc.description) from exc
