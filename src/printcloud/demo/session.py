"""The demo's seed 000, FIG. 11 walk: a browser's session (AUTH_ID) → print-service tokens.

Docgen exchanges alice's authentication session (RFC 8693) for an access and a
refresh token; refreshing rotates the refresh token, and reusing the old one
revokes the whole family.
"""

from __future__ import annotations

from typing import Any

from printcloud.auth.client import AuthClient
from printcloud.core.settings import Settings
from printcloud.demo.browser import Browser
from printcloud.demo.report import Report


def walk_session_exchange(
    settings: Settings, report: Report, alice: Browser, *, base: str, issuer: str
) -> None:
    svc_id, svc_secret = settings.service_client(issuer, "docgen")
    docgen = AuthClient(f"{base}/{issuer}", client_id=svc_id, client_secret=svc_secret)
    auth_id = alice.session_id(issuer) or ""
    exchanged = docgen.exchange_session(auth_id, scope="print")
    who = docgen.introspect(exchanged.access_token)
    report.check(
        "token exchange of alice's session",
        who.get("username") == "alice" and bool(exchanged.refresh_token),
        f"user={who.get('username')} tenant={who.get('tenant_id')} refresh token issued",
    )
    refreshed = docgen.refresh(exchanged.refresh_token or "")
    reused: Any
    try:
        docgen.refresh(exchanged.refresh_token or "")
        reused = "accepted"
    except Exception as exc:
        reused = str(exc)
    still = docgen.introspect(refreshed.access_token).get("active")
    report.check(
        "refresh rotates; reuse revokes the family",
        "invalid_grant" in str(reused) and still is False,
        f"reuse answered {reused!r}; newest access token active={still}",
    )
