"""OAuth 2.0 on Authlib's framework-agnostic server classes, one server per issuer.

One module per grant or specification, as Authlib itself is laid out:

- `code`: authorization code + PKCE (RFC 6749 §4.1, RFC 7636, S256 only, required
  for public clients); a replayed code revokes what it issued (§4.1.2).
- `client_credentials`: client credentials (RFC 6749 §4.4) with the device's
  `local_user` (seed 001).
- `refresh`: refresh tokens (RFC 6749 §6) with rotation and reuse detection (a
  reused refresh token revokes its whole family).
- `token_exchange`: RFC 8693, a browser's authentication session for tokens
  (seed 000 S1102–S1107).
- `device`: device authorization (RFC 8628).
- `card`: the ID-card grant (seed 004).
- `introspection` (RFC 7662, with `tenant_id`, `local_user` and
  `local_auth_cooperation`), `revocation` (RFC 7009), `metadata` (RFC 8414).
- `server`: the issuer's Authlib server, token generation and storage; `call`,
  `request`, `views`: the shared glue (the per-call context, the Starlette
  request, what Authlib sees of our rows).

Written here because Authlib lacks them: refresh-token reuse detection, the
token-exchange grant, authorization-code replay revoking what the code issued,
and seed 001's `local_user` on client-credentials requests.

Authlib is synchronous: each call runs in a worker thread with its own DB
session, held in a context variable for the duration of the call (`call`).
"""

from __future__ import annotations

from .call import Call, NeedsSession, bind, current, current_db, unbind
from .request import Request
from .server import IssuerServer
from .views import ClientView

__all__ = [
    "Call",
    "ClientView",
    "IssuerServer",
    "NeedsSession",
    "Request",
    "bind",
    "current",
    "current_db",
    "unbind",
]
