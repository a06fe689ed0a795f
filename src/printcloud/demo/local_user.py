"""The demo's seed 001 walk: a device's client-credentials token carries its local user.

Introspection answers the tenant and the local user; `/api/me` acts as the device's
client while the tenant's local authentication cooperation mode is off, and as the
local user once it is on.
"""

from __future__ import annotations

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.demo.report import Report


def walk_local_user(
    settings: Settings, report: Report, mfp: AuthClient, *, issuer: str, device_id: str
) -> None:
    local_user = {"id": "jdoe", "name": "J. Doe"}
    token = mfp.client_credentials(scope="print", local_user=local_user)
    info = mfp.introspect(token.access_token)
    report.check(
        "token with local_user",
        bool(token.access_token),
        f"expires in {token.expires_in}s, scope {token.scope!r}",
    )
    report.check(
        "introspection: tenant + local user",
        info.get("tenant_id") == "1000AA" and info.get("local_user") == local_user,
        f"tenant_id={info.get('tenant_id')} local_user={info.get('local_user')}",
    )
    me = mfp.me(token.access_token)
    report.check(
        "/api/me, cooperation mode OFF",
        me["acting_user"] == device_id,
        f"acts as {me['acting_kind']} {me['acting_user']}",
    )
    with Database(settings.effective_database_url).session() as s:
        auth_service.update_tenant_settings(
            s,
            tenant=auth_service.get_tenant(s, issuer=issuer, tenant_id="1000AA"),
            actor="demo",
            local_auth_cooperation=True,
        )
    token2 = mfp.client_credentials(scope="print", local_user=local_user)
    me2 = mfp.me(token2.access_token)
    report.check(
        "/api/me, cooperation mode ON",
        me2["acting_user"] == "jdoe",
        f"acts as {me2['acting_kind']} {me2['acting_user']}",
    )
