"""How docgen obtains, refreshes and checks the tenant's two tokens (seed 000,
FIG. 11–13, FIG. 16). docgen is the client `svc-docgen` at both issuers.

- **Print token** (server C's, from idp-a), FIG. 11: from the admin's
  authenticated idp-a session. Two ways, both standard, both ending in S1108:
  - `exchange_print_token`: RFC 8693 token exchange of the session ID (seed
    000's AUTH_ID, S1103–S1106), for a caller that holds it (the JSON API;
    the CLI and the demo, which signed in at idp-a themselves).
  - `print_token_from_code`: the browser's way. docgen's pages cannot read the
    idp-a session cookie (its path is `/idp-a`, and in a distributed run it
    is another host's), and a session ID must not travel in a URL. So "Get
    print token" sends the browser to idp-a's authorization endpoint (RFC 6749
    §4.1 with PKCE): idp-a recognises the admin by that same session cookie and
    answers a code bound to the session's user, which docgen redeems for an
    access and a refresh token (S1104–S1107). Without a live session idp-a asks
    the admin to sign in first.
  Either way the token must belong to the signed-in admin's tenant, else it is
  revoked and refused; a refusal is FIG. 12's error (S1201–S1202).
- **CRM token** (server B's, from idp-b), FIG. 13, S1301–S1313: the
  authorization-code flow with PKCE at idp-b; its tenant and user (the CRM's
  own) come from introspection at idp-b.
- **Refresh** (S1603–S1605, S1608–S1611): one refresh at a time per token set
  (a lease in the row, across processes), because the issuers rotate refresh
  tokens and revoke the whole family when a used one comes again. A refusal is
  remembered on the settings (shown to the admin) and raised as `TokenRefused`,
  on which the batch flow suspends (S1606, S1612).
- **Verification** of the print token by introspection at idp-a (S1520–S1521).

These functions are synchronous (HTTP and database): call them in a worker
thread. Each takes the docgen tenant explicitly.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from printcloud.auth.client import OAuthError, TokenSet, pkce_challenge
from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.errors import PrintcloudError, Unavailable
from printcloud.core.logs import get_logger

from . import service
from .runtime import DocgenRuntime
from .service import Kind, StoredTokens, TokenState

log = get_logger("docgen.tokens")

#: What each token is asked for: printing at the print service; reading the CRM's data.
PRINT_SCOPE = "print"
CRM_SCOPE = "crm.read"
#: How long a refresh waits for another caller's refresh of the same token set.
REFRESH_WAIT = 20.0
_LABEL = {"crm": "CRM", "print": "print"}


class TokenRefused(PrintcloudError):
    """An issuer refused to give or renew a token (expired session, revoked refresh
    token, a code that is not valid, a token of another tenant). `reason` says
    which: the error page shows it (S1202) and the batch flow records it (S1612)."""

    status_code = 400
    error = "invalid_grant"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    """S1521: whether the stored print token may be used, and if not, why."""

    valid: bool
    reason: str = ""
    tokens: StoredTokens | None = None


@dataclass(frozen=True)
class Authorization:
    """A started authorization-code flow: where to send the browser, and what to
    keep (sealed, in the browser) until the issuer sends it back."""

    url: str
    state: str
    verifier: str


# -- small pieces ------------------------------------------------------------------------


def _unreachable(issuer: str, exc: Exception) -> Unavailable:
    log.warning("issuer unreachable", extra={"fields": {"issuer": issuer, "error": repr(exc)}})
    return Unavailable(f"the authorization server {issuer} does not answer; try again shortly")


def _expires_at(issued: TokenSet) -> datetime | None:
    return utcnow() + timedelta(seconds=issued.expires_in) if issued.expires_in > 0 else None


def _introspect(rt: DocgenRuntime, issuer: str, token: str) -> dict[str, Any]:
    try:
        return rt.client(issuer).introspect(token)
    except OAuthError as exc:  # docgen's own client was refused: a set-up fault
        log.error("introspection refused", extra={"fields": {"issuer": issuer, "error": exc.error}})
        raise Unavailable(f"{issuer} refused docgen's introspection ({exc.error})") from exc
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise _unreachable(issuer, exc) from exc


def _revoke(rt: DocgenRuntime, issuer: str, *tokens: str | None) -> None:
    for token in tokens:
        if token:
            try:
                rt.client(issuer).revoke(token)
            except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning(
                    "token not revoked", extra={"fields": {"issuer": issuer, "error": repr(exc)}}
                )


def start_authorization(rt: DocgenRuntime, issuer: str, *, scope: str) -> Authorization:
    """RFC 6749 §4.1.1 with RFC 7636 (S256): the URL of `issuer`'s authorization
    endpoint for `svc-docgen` with docgen's redirect URI (S1303: client ID and
    redirect URI as parameters), a fresh `state` and PKCE verifier."""
    try:
        endpoint = str(rt.client(issuer).metadata()["authorization_endpoint"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise _unreachable(issuer, exc) from exc
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": rt.client(issuer).client_id,
        "redirect_uri": rt.redirect_uri(issuer),
        "scope": scope,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return Authorization(url=f"{endpoint}?{urlencode(query)}", state=state, verifier=verifier)


def redeem_code(rt: DocgenRuntime, issuer: str, *, code: str, verifier: str) -> TokenSet:
    """S1309–S1312: the code for tokens at `issuer`'s token endpoint."""
    try:
        return rt.client(issuer).exchange_code(
            code, redirect_uri=rt.redirect_uri(issuer), code_verifier=verifier
        )
    except OAuthError as exc:
        raise TokenRefused(f"{issuer} did not issue tokens for this sign-in ({exc})") from exc
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise _unreachable(issuer, exc) from exc


def _state(rt: DocgenRuntime, tenant_id: str, kind: Kind) -> TokenState:
    with rt.db.session() as db:
        return service.token_states(db, tenant_id=tenant_id)[kind]


# -- the print token (FIG. 11–12) -------------------------------------------------------------


def exchange_print_token(
    rt: DocgenRuntime, *, tenant_id: str, session_id: str, actor: str
) -> TokenState:
    """S1103–S1108: RFC 8693 exchange of the admin's idp-a session ID (AUTH_ID) for
    the print token set, stored for `tenant_id`. `TokenRefused` when idp-a refuses
    (the session expired or ended: FIG. 12) or the session is another tenant's."""
    issuer = rt.platform_issuer
    try:
        issued = rt.client(issuer).exchange_session(session_id, scope=PRINT_SCOPE)
    except OAuthError as exc:
        raise TokenRefused(
            f"{issuer} did not exchange the session for a print token ({exc})"
        ) from exc
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise _unreachable(issuer, exc) from exc
    return _keep_print(rt, tenant_id=tenant_id, issued=issued, actor=actor)


def print_token_from_code(
    rt: DocgenRuntime, *, tenant_id: str, code: str, verifier: str, actor: str
) -> TokenState:
    """The browser's FIG. 11: the code idp-a answered for the admin's session, redeemed
    for the print token set, stored for `tenant_id`."""
    issued = redeem_code(rt, rt.platform_issuer, code=code, verifier=verifier)
    return _keep_print(rt, tenant_id=tenant_id, issued=issued, actor=actor)


def _keep_print(rt: DocgenRuntime, *, tenant_id: str, issued: TokenSet, actor: str) -> TokenState:
    issuer = rt.platform_issuer
    info = _introspect(rt, issuer, issued.access_token)
    problem = None
    if not info.get("active"):
        problem = f"{issuer} issued a print token that is not active"
    elif info.get("tenant_id") != tenant_id:
        problem = (
            f"the {issuer} session in this browser belongs to another tenant, not {tenant_id}; "
            f"sign in at {issuer} as an administrator of {tenant_id}"
        )
    elif PRINT_SCOPE not in str(info.get("scope") or "").split():
        problem = f"the {issuer} account may not print (the token lacks the scope {PRINT_SCOPE})"
    if problem is not None:
        _revoke(rt, issuer, issued.refresh_token, issued.access_token)
        raise TokenRefused(problem)
    with rt.db.session() as db:
        service.store_print_tokens(
            db,
            tenant_id=tenant_id,
            box=rt.box,
            actor=actor,
            issuer=issuer,
            user=info.get("username"),
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            scope=issued.scope or str(info.get("scope") or ""),
            expires_at=_expires_at(issued),
        )
    log.info("print token stored", extra={"fields": {"tenant": tenant_id, "by": actor}})
    return _state(rt, tenant_id, "print")


# -- the CRM token (FIG. 13) ---------------------------------------------------------------


def crm_issuer(rt: DocgenRuntime) -> str:
    if rt.crm_issuer is None:
        raise Unavailable("no CRM issuer is configured (PRINTCLOUD_ISSUERS names only one)")
    return rt.crm_issuer


def crm_token_from_code(
    rt: DocgenRuntime, *, tenant_id: str, code: str, verifier: str, actor: str
) -> TokenState:
    """S1309–S1313: the code idp-b answered, redeemed for the CRM token set; the CRM
    tenant and user it acts for come from introspection at idp-b."""
    issuer = crm_issuer(rt)
    issued = redeem_code(rt, issuer, code=code, verifier=verifier)
    info = _introspect(rt, issuer, issued.access_token)
    if not info.get("active") or not info.get("tenant_id"):
        _revoke(rt, issuer, issued.refresh_token, issued.access_token)
        raise TokenRefused(f"{issuer} issued a CRM token that is not active")
    with rt.db.session() as db:
        service.store_crm_tokens(
            db,
            tenant_id=tenant_id,
            box=rt.box,
            actor=actor,
            issuer=issuer,
            crm_tenant_id=str(info["tenant_id"]),
            user=info.get("username"),
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            scope=issued.scope or str(info.get("scope") or ""),
            expires_at=_expires_at(issued),
        )
    log.info(
        "CRM token stored",
        extra={"fields": {"tenant": tenant_id, "crm_tenant": info["tenant_id"], "by": actor}},
    )
    return _state(rt, tenant_id, "crm")


# -- refresh (FIG. 16) ---------------------------------------------------------------------


def refresh_print(
    rt: DocgenRuntime, *, tenant_id: str, stale_access: str | None = None
) -> StoredTokens:
    """S1608–S1610: a new print access token from the stored refresh token."""
    return _refresh(rt, tenant_id=tenant_id, kind="print", stale_access=stale_access)


def refresh_crm(
    rt: DocgenRuntime, *, tenant_id: str, stale_access: str | None = None
) -> StoredTokens:
    """S1603–S1605: a new CRM access token from the stored refresh token."""
    return _refresh(rt, tenant_id=tenant_id, kind="crm", stale_access=stale_access)


def _refresh(
    rt: DocgenRuntime, *, tenant_id: str, kind: Kind, stale_access: str | None
) -> StoredTokens:
    """Refresh the set unless someone already replaced `stale_access` (the access
    token the caller found expired; by default the one stored now): then answer
    theirs. Raises `TokenRefused` (nothing to refresh with, or the issuer said no)."""
    label = _LABEL[kind]
    deadline = time.monotonic() + REFRESH_WAIT
    while True:
        with rt.db.session() as db:
            current = service.token_set(db, tenant_id=tenant_id, kind=kind, box=rt.box)
            if current is None:
                raise TokenRefused(f"no {label} token is stored for this tenant")
            if stale_access is None:
                stale_access = current.access_token
            elif not crypto.equal(current.access_token, stale_access):
                return current  # refreshed meanwhile by another caller
            if not current.refresh_token:
                raise TokenRefused(
                    f"the {label} token expired and has no refresh token; get a new one on "
                    "the batch-print settings page"
                )
            claimed = service.claim_refresh(db, tenant_id=tenant_id, kind=kind, stamp=current.stamp)
        if claimed:
            break
        if time.monotonic() > deadline:
            raise Unavailable(f"another refresh of the {label} token is taking too long")
        time.sleep(0.1)
    issuer = current.issuer
    try:
        issued = rt.client(issuer).refresh(current.refresh_token)
    except OAuthError as exc:
        reason = f"{issuer} refused to refresh the {label} token ({exc})"
        with rt.db.session() as db:
            service.note_token_problem(db, tenant_id=tenant_id, kind=kind, problem=reason)
        log.warning(
            "refresh refused",
            extra={"fields": {"tenant": tenant_id, "kind": kind, "error": exc.error}},
        )
        raise TokenRefused(reason) from exc
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        with rt.db.session() as db:
            service.release_refresh(db, tenant_id=tenant_id, kind=kind)
        raise _unreachable(issuer, exc) from exc
    with rt.db.session() as db:
        tokens: service.TokenSet = {
            "box": rt.box,
            "actor": "refresh",
            "issuer": issuer,
            "user": current.user,
            "access_token": issued.access_token,
            # The issuers rotate refresh tokens; one that does not keeps the old one valid.
            "refresh_token": issued.refresh_token or current.refresh_token,
            "scope": issued.scope or current.scope,
            "expires_at": _expires_at(issued),
            "refreshed": True,
        }
        if kind == "crm":
            crm_tenant = current.tenant_id
            service.store_crm_tokens(db, tenant_id=tenant_id, crm_tenant_id=crm_tenant, **tokens)
        else:
            service.store_print_tokens(db, tenant_id=tenant_id, **tokens)
        fresh = service.token_set(db, tenant_id=tenant_id, kind=kind, box=rt.box)
    assert fresh is not None
    log.info("token refreshed", extra={"fields": {"tenant": tenant_id, "kind": kind}})
    return fresh


# -- verification (S1520–S1521) and removal ---------------------------------------------------


def verify_print_token(rt: DocgenRuntime, *, tenant_id: str) -> Verdict:
    """S1520–S1521: introspect the stored print token at idp-a. Invalid when absent,
    inactive (expired, revoked), another tenant's or without the scope `print`.
    `Unavailable` when idp-a does not answer (the caller may retry)."""
    with rt.db.session() as db:
        current = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
    if current is None:
        return Verdict(False, "no print token is stored for this tenant")
    info = _introspect(rt, current.issuer or rt.platform_issuer, current.access_token)
    if not info.get("active"):
        return Verdict(False, "the print token is not active (expired or revoked)", current)
    if info.get("tenant_id") != tenant_id:
        return Verdict(False, "the print token belongs to another tenant", current)
    if PRINT_SCOPE not in str(info.get("scope") or "").split():
        return Verdict(False, f"the print token lacks the scope {PRINT_SCOPE}", current)
    return Verdict(True, "", current)


def verify_user_print_token(rt: DocgenRuntime, *, tenant_id: str, token: str) -> Verdict:
    """FIG. 19: a signed-in user's idp-a token, checked as `verify_print_token` checks
    the stored one (active, this tenant's, scope `print`); it is never refreshed."""
    info = _introspect(rt, rt.platform_issuer, token)
    if not info.get("active"):
        return Verdict(False, "the user's print token is not active (expired or revoked)")
    if info.get("tenant_id") != tenant_id:
        return Verdict(False, "the user's print token belongs to another tenant")
    if PRINT_SCOPE not in str(info.get("scope") or "").split():
        return Verdict(False, f"the user may not print (the token lacks the scope {PRINT_SCOPE})")
    return Verdict(True, "")


def tenant_name(rt: DocgenRuntime, *, tenant_id: str, token: str | None) -> str:
    """The tenant's display name as idp-a tells it (the `tenant_name` of `token`'s
    introspection: the user's print token, or the tenant's stored one when None); the
    tenant ID when idp-a does not say (an inactive token, no token stored)."""
    if token is None:
        with rt.db.session() as db:
            stored = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
        token = stored.access_token if stored is not None else None
    if token is None:
        return tenant_id
    info = _introspect(rt, rt.platform_issuer, token)
    if not info.get("active") or info.get("tenant_id") != tenant_id:
        return tenant_id
    return str(info.get("tenant_name") or tenant_id)


def forget(rt: DocgenRuntime, *, tenant_id: str, kind: Kind) -> None:
    """Revoke a stored token set at its issuer (best effort) and remove it."""
    with rt.db.session() as db:
        current = service.token_set(db, tenant_id=tenant_id, kind=kind, box=rt.box)
    if current is not None and current.issuer:
        _revoke(rt, current.issuer, current.refresh_token, current.access_token)
    with rt.db.session() as db:
        service.forget_tokens(db, tenant_id=tenant_id, kind=kind)
