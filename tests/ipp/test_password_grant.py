"""The password grant (RFC 6749 §4.3) the print service uses for HTTP Basic at its IPP
queues: only the platform's print service may use it, it checks the tenant's
directory, and failures count on the sign-in page's per-account limiter."""

from __future__ import annotations

from typing import Any

import httpx


def test_only_the_print_service_exchanges_directory_credentials(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1, login_attempts_per_minute=3)
    tenant = stack.tenant()
    stack.user(tenant, "alice", "correct horse")
    other = stack.tenant()
    token_url = f"{stack.base_url}/idp-a/token"
    printing = stack.settings.service_client("idp-a", "printing")

    def ask(auth: tuple[str, str], **form: str) -> httpx.Response:
        data = {"grant_type": "password", "scope": "print", **form}
        return httpx.post(token_url, data=data, auth=auth, timeout=30)

    good = ask(printing, tenant=tenant, username="alice", password="correct horse")
    assert good.status_code == 200, good.text
    assert "refresh_token" not in good.json()
    seen = httpx.post(
        f"{stack.base_url}/idp-a/introspect",
        data={"token": good.json()["access_token"]},
        auth=printing,
        timeout=30,
    ).json()
    assert seen["active"] and seen["tenant_id"] == tenant and seen["username"] == "alice"

    # a tenant's own client may not, even a confidential one with every grant it can get
    app = stack.client(tenant, scope="print")
    refused = ask(app, tenant=tenant, username="alice", password="correct horse")
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"
    # another platform service has no such grant either
    crm = stack.settings.service_client("idp-a", "crm")
    assert ask(crm, tenant=tenant, username="alice", password="correct horse").status_code == 400

    # the user exists in one tenant only; an unknown tenant answers the same
    for form in (
        {"tenant": other, "username": "alice", "password": "correct horse"},
        {"tenant": "no-such-tenant", "username": "alice", "password": "correct horse"},
        {"tenant": tenant, "username": "bob", "password": "correct horse"},
    ):
        wrong = ask(printing, **form)
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant", form
    missing = ask(printing, tenant=tenant, username="alice")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"

    # three wrong passwords lock the account for the minute, the right one included
    for _ in range(3):
        assert ask(printing, tenant=tenant, username="alice", password="x").status_code == 400
    locked = ask(printing, tenant=tenant, username="alice", password="correct horse")
    assert locked.status_code == 429 and locked.headers.get("retry-after")
