"""Token revocation: RFC 7009 (§2.1 request, §2.2 a token the client may not
revoke answered like an unknown one).
"""

from __future__ import annotations

from authlib.oauth2.rfc7009 import RevocationEndpoint

from .. import service
from .call import current, current_db
from .request import Request
from .views import ClientView, TokenParams, TokenView


class Revocation(TokenParams, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_token(self, request: Request, client: ClientView) -> TokenView | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009 §2.2: a token the client may not revoke is answered like an unknown one,
        # so that a client learns nothing about other clients' tokens.
        if token is None or not token.check_client(client):
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        info = service.lookup_token(
            current_db(), issuer=current().issuer, token=token_string, hint=token_type_hint
        )
        return TokenView(info) if info else None

    def revoke_token(self, token: TokenView, request: Request) -> None:
        service.revoke_token(current_db(), info=token.info)
