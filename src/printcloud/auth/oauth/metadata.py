"""Authorization server metadata: RFC 8414 §2 (the fields) and §3 (served at
`/.well-known/oauth-authorization-server` under each issuer, by the routes).
"""

from __future__ import annotations

from typing import Any

from printcloud.core.settings import Settings

from .. import service
from .device import DEVICE_CODE
from .token_exchange import TOKEN_EXCHANGE


def server_metadata(settings: Settings, issuer: str) -> dict[str, Any]:
    base = settings.issuer_url(issuer)
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "introspection_endpoint": f"{base}/introspect",
        "revocation_endpoint": f"{base}/revoke",
        "device_authorization_endpoint": f"{base}/device_authorization",
        # RFC 9068 access tokens (clients set to `jwt`) are checked with these keys.
        "jwks_uri": f"{base}/jwks",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "client_credentials",
            "refresh_token",
            DEVICE_CODE,
            TOKEN_EXCHANGE,
            service.CARD_GRANT,
        ],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(service.SCOPES),
        "service_documentation": f"{base}/docs",
    }
