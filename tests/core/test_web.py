"""NUL characters never reach a handler (PostgreSQL cannot store them): 400, not 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        (
            "/idp-a/login",
            {"data": {"tenant": "a\x00b", "username": "u", "password": "p", "csrf": "x"}},
        ),
        ("/idp-a/login?next=%00", {"data": {"tenant": "a"}}),
        ("/idp-a/token", {"data": {"grant_type": "client_credentials", "scope": "\x00"}}),
        ("/idp-a/api/admin/tenants", {"json": {"tenant_id": "a\x00"}}),
    ],
)
def test_nul_is_refused_with_400(stack: Stack, path: str, kwargs: dict[str, object]) -> None:
    response = httpx.post(f"{stack.base_url}{path}", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "NUL" in response.json()["error_description"]


def test_nul_names_the_field(stack: Stack) -> None:
    form = httpx.post(f"{stack.base_url}/idp-a/token", data={"grant_type": "x", "scope": "a\x00"})
    assert form.json()["field"] == "scope"
    query = httpx.get(f"{stack.base_url}/idp-a/login", params={"next": "/idp-a/\x00"})
    assert query.status_code == 400 and query.json()["field"] == "next"


def test_nul_in_a_path_is_a_client_error(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/idp-a/login%00x", timeout=60)
    assert 400 <= response.status_code < 500
