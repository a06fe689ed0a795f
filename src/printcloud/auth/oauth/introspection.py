"""Token introspection: RFC 7662 (§2.1 request, §2.2 response), answering seed 001's
`tenant_id`, `local_user` and `local_auth_cooperation` besides the standard fields, and
the tenant's display name `tenant_name` (what the services' pages show).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from printcloud.core import jws

from .. import store
from . import rfc9068
from .call import current, current_db
from .request import Request
from .views import ClientView, TokenParams, TokenView


class Introspection(TokenParams, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        call = current()
        if jws.looks_like_jwt(token_string):  # RFC 9068: read from the token, no database
            server = self.server
            return self._jwt(server.keyring, server.clients, token_string)
        if call.reader is not None:
            info = call.reader.lookup(issuer=call.issuer, token=token_string, hint=token_type_hint)
        else:
            info = store.lookup_token(
                current_db().connection(),
                issuer=call.issuer,
                token=token_string,
                hint=token_type_hint,
            )
        return TokenView(info) if info else None

    @staticmethod
    def _jwt(ring: rfc9068.KeyRing, clients: store.ClientCache, token: str) -> TokenView | None:
        info = rfc9068.introspect(ring, clients, settings=current().settings, token=token)
        return TokenView(info) if info else None

    def check_permission(self, token: TokenView, client: ClientView, request: Request) -> bool:
        # A platform service introspects for every tenant; a tenant's client only its own tenant.
        return client.kind == "service" or token.info.tenant_id == client.row.tenant.tenant_id

    def introspect_token(self, token: TokenView) -> dict[str, Any]:
        info = token.info
        body: dict[str, Any] = {
            "active": True,
            "scope": info.scope,
            "client_id": info.client_id,
            "token_type": info.kind,
            "exp": int(info.expires_at.timestamp()),
            "iat": int(info.issued_at.timestamp()),
            "sub": info.username or info.client_id,
            "iss": current().settings.issuer_url(current().issuer),
            "tenant_id": info.tenant_id,
            # the tenant's display name, for the pages of the services (tokens carry the ID)
            "tenant_name": info.tenant_name or info.tenant_id,
            "local_auth_cooperation": info.local_auth_cooperation,
            # Computed now, not when the token was issued: a demoted admin's token says false.
            "admin": info.admin,
            "held_release": info.held_release,
        }
        if info.amr:
            body["amr"] = list(info.amr)
        if info.username:
            body["username"] = info.username
        if info.local_user is not None:
            body["local_user"] = info.local_user
        return body
