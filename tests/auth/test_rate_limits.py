"""Login lockout and client-authentication limits, over real HTTP, on a stack of
its own started with low limits (3 a minute) so a test can reach them quickly."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stack, make_settings, start_stack

REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(
        tmp_path_factory.mktemp("rate-limits"),
        None,
        login_attempts_per_minute=3,
        client_auth_failures_per_minute=3,
    )
    stack, server, thread = start_stack(settings)
    yield stack
    server.should_exit = True
    thread.join(timeout=10)
    stack.db.dispose()


def login(http: httpx.Client, tenant: str, username: str, password: str) -> httpx.Response:
    page = http.get("/idp-a/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return http.post(
        "/idp-a/login",
        data={"csrf": found.group(1), "tenant": tenant, "username": username, "password": password},
    )


def alert(response: httpx.Response) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]*)<', response.text)
    assert found, response.text
    return found.group(1)


def test_wrong_passwords_lock_the_account_even_for_the_right_password(strict: Stack) -> None:
    tenant = strict.tenant()
    username, password = strict.user(tenant, "alice", "the right password")
    strict.user(tenant, "bob", "bobs password")
    with httpx.Client(base_url=strict.base_url, follow_redirects=False) as http:
        for _ in range(3):
            wrong = login(http, tenant, username, "not the password")
            assert wrong.status_code == 401
            assert "not right" in alert(wrong)
        locked = login(http, tenant, username, password)
        assert locked.status_code == 429
        retry_after = int(locked.headers["retry-after"])
        assert 1 <= retry_after <= 61
        assert alert(locked) == f"Too many attempts. Try again in {retry_after} seconds."
        assert "pc_sid_idp_a" not in http.cookies  # no session while locked
        assert (
            login(http, tenant, "ALICE", password).status_code == 429
        )  # user names are not case games
        # the lock is per account: another user of the tenant still signs in
        assert login(http, tenant, "bob", "bobs password").status_code == 303


def test_a_successful_login_resets_the_count(strict: Stack) -> None:
    tenant = strict.tenant()
    username, password = strict.user(tenant, "carol", "carols password")
    with httpx.Client(base_url=strict.base_url, follow_redirects=False) as http:
        assert login(http, tenant, username, "wrong").status_code == 401
        assert login(http, tenant, username, "wrong").status_code == 401
        assert login(http, tenant, username, password).status_code == 303
        assert login(http, tenant, username, "wrong").status_code == 401
        assert login(http, tenant, username, "wrong").status_code == 401
        assert login(http, tenant, username, password).status_code == 303


def test_wrong_client_secrets_are_refused_with_429(strict: Stack) -> None:
    tenant = strict.tenant()
    client_id, secret = strict.client(tenant, grant_types=["client_credentials"])
    assert secret
    token_url = f"{strict.issuer_url()}/token"
    form = {"grant_type": "client_credentials"}
    assert (
        httpx.post(token_url, data=form, auth=(client_id, secret)).status_code == 200
    )  # successes do not count
    for _ in range(3):
        failed = httpx.post(token_url, data=form, auth=(client_id, "wrong"))
        assert failed.status_code == 401 and failed.json()["error"] == "invalid_client"
    refused = httpx.post(token_url, data=form, auth=(client_id, secret))
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["content-type"].startswith("application/json")
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert "access_token" not in refused.text
    for endpoint in (
        "introspect",
        "revoke",
        "device_authorization",
    ):  # the same lock guards every endpoint
        response = httpx.post(
            f"{strict.issuer_url()}/{endpoint}", data={"token": "x"}, auth=(client_id, secret)
        )
        assert response.status_code == 429, endpoint
