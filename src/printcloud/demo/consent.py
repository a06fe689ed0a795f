"""The demo's seed 002 walk: one consent for the whole tenant on a device.

Alice, an admin, consents on the device's client and ticks "everyone in Acme
Printing"; Bob, of the same tenant, is not asked; Carol, of another tenant, is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.demo.browser import CALLBACK, Browser, pkce
from printcloud.demo.report import Report


@dataclass
class Consented:
    """What this walk leaves for the later ones."""

    alice: Browser  # signed in at the issuer
    query: dict[str, str]  # the device client's authorization request
    access_token: str  # alice's print token


def walk_consent(
    settings: Settings,
    report: Report,
    mfp: AuthClient,
    *,
    base: str,
    issuer: str,
    device_id: str,
) -> Consented:
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": device_id,
        "redirect_uri": CALLBACK,
        "scope": "print profile",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    alice = Browser(base)
    code, asked, offered = alice.authorize(
        issuer,
        query,
        tenant="1000AA",
        username="alice",
        password="demo-password-1",
        tenant_wide=True,
    )
    report.check(
        "alice (admin) is asked, ticks 'everyone in Acme Printing'",
        bool(code and asked and offered),
        f"consent page shown={asked}, tenant-wide box offered={offered}",
    )
    tokens = mfp.exchange_code(code or "", redirect_uri=CALLBACK, code_verifier=verifier)
    report.check(
        "code + PKCE → tokens",
        bool(tokens.access_token and tokens.refresh_token),
        "access and refresh token issued",
    )
    _, challenge_b = pkce()
    code_b, asked_b, _ = Browser(base).authorize(
        issuer,
        {**query, "code_challenge": challenge_b, "state": "b"},
        tenant="1000AA",
        username="bob",
        password="demo-password-2",
    )
    report.check(
        "bob (same tenant) is NOT asked",
        bool(code_b) and not asked_b,
        f"consent page shown={asked_b}, code issued={bool(code_b)}",
    )
    _, asked_c, offered_c = Browser(base).authorize(
        issuer,
        {**query, "state": "c"},
        tenant="1000BB",
        username="carol",
        password="demo-password-3",
    )
    report.check(
        "carol (other tenant) IS asked",
        asked_c and not offered_c,
        f"consent page shown={asked_c}, tenant-wide box offered={offered_c}",
    )
    with Database(settings.effective_database_url).session() as s:
        consents = auth_service.list_tenant_consents(
            s, tenant=auth_service.get_tenant(s, issuer=issuer, tenant_id="1000AA")
        )
        summary = [
            f"{c.client.name}: by {c.granted_by} at {c.granted_at:%H:%M:%S}" for c in consents
        ]
    report.check(
        "tenant-wide consent listed with who and when", len(summary) == 1, "; ".join(summary)
    )
    return Consented(alice, query, tokens.access_token)
