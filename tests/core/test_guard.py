"""The resource-server guard: who a request acts as (seed 001), the introspection
cache and its limits, and failures of the authorization server.

The introspection endpoint is an in-process httpx transport answering RFC 7662
JSON (the guard takes `transport=` for this), or nothing at all on a free port.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import Depends, FastAPI

from printcloud.core.errors import InsufficientScope, Unauthorized, Unavailable
from printcloud.core.guard import Guard, Principal
from printcloud.core.web import install_error_handlers
from tests.conftest import free_port

T = TypeVar("T")
URL = "https://idp.test/idp-a/introspect"


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def principal(**overrides: Any) -> Principal:
    values: dict[str, Any] = {
        "issuer": "idp-a",
        "tenant_id": "t1",
        "client_id": "dev-1",
        "user_id": None,
        "local_user": None,
        "scopes": frozenset({"print"}),
        "local_auth_cooperation": False,
        "expires_at": 0.0,
    }
    values.update(overrides)
    return Principal(**values)


# -- Principal.acting_user (seed 001, claim 1) --------------------------------------------


def test_user_token_acts_as_its_user_whatever_the_mode() -> None:
    for mode in (False, True):
        p = principal(user_id="alice", local_user={"id": "jdoe"}, local_auth_cooperation=mode)
        assert (p.acting_kind, p.acting_user) == ("user", "alice")


def test_local_user_acts_only_in_cooperation_mode() -> None:
    on = principal(local_user={"id": "jdoe", "name": "J. Doe"}, local_auth_cooperation=True)
    assert (on.acting_kind, on.acting_user) == ("local_user", "jdoe")
    off = principal(local_user={"id": "jdoe"}, local_auth_cooperation=False)
    assert (off.acting_kind, off.acting_user) == ("client", "dev-1")


def test_client_acts_when_there_is_no_local_user() -> None:
    p = principal(local_user=None, local_auth_cooperation=True)
    assert (p.acting_kind, p.acting_user) == ("client", "dev-1")
    assert principal(local_user={}, local_auth_cooperation=True).acting_kind == "client"


def test_has_scopes() -> None:
    p = principal(scopes=frozenset({"print", "jobs"}))
    assert p.has_scopes() and p.has_scopes("print") and p.has_scopes("print", "jobs")
    assert not p.has_scopes("admin") and not p.has_scopes("print", "admin")


# -- Guard.verify against an introspection endpoint ------------------------------------------


class Introspector:
    """An RFC 7662 endpoint answering from `tokens`; counts its calls."""

    def __init__(self, tokens: dict[str, dict[str, Any]]) -> None:
        self.tokens = tokens
        self.calls = 0
        self.auth: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.auth.append(request.headers.get("authorization", ""))
        form = parse_qs(request.content.decode())
        token = form.get("token", [""])[0]
        return httpx.Response(200, json=self.tokens.get(token, {"active": False}))


def active(exp: float, **extra: Any) -> dict[str, Any]:
    return {
        "active": True,
        "tenant_id": "t1",
        "client_id": "dev-1",
        "scope": "print jobs",
        "token_type": "access_token",
        "exp": exp,
        **extra,
    }


def make_guard(
    endpoint: Callable[[httpx.Request], httpx.Response],
    now: list[float],
    cache_ttl: float = 30.0,
    **kwargs: Any,
) -> Guard:
    return Guard(
        issuer="idp-a",
        introspection_url=URL,
        client_id="svc-x",
        client_secret="s3cret",
        cache_ttl=cache_ttl,
        transport=httpx.MockTransport(endpoint),
        clock=lambda: now[0],
        **kwargs,
    )


def test_verify_builds_the_principal_and_authenticates_as_the_service() -> None:
    endpoint = Introspector(
        {
            "tok": active(
                2000, username="alice", local_user={"id": "jdoe"}, local_auth_cooperation=True
            )
        }
    )
    guard = make_guard(endpoint, [1000.0])

    async def go() -> Principal:
        try:
            return await guard.verify("tok")
        finally:
            await guard.aclose()

    p = run(go)
    assert p.issuer == "idp-a" and p.tenant_id == "t1" and p.client_id == "dev-1"
    assert p.user_id == "alice" and p.local_user == {"id": "jdoe"} and p.local_auth_cooperation
    assert p.scopes == frozenset({"print", "jobs"}) and p.expires_at == 2000
    assert endpoint.auth == ["Basic " + base64.b64encode(b"svc-x:s3cret").decode()]


def test_cache_never_outlives_the_token() -> None:
    now = [1000.0]
    endpoint = Introspector({"tok": active(1010)})
    guard = make_guard(endpoint, now, cache_ttl=30)

    async def go() -> None:
        try:
            await guard.verify("tok")
            now[0] = 1009.0
            await guard.verify("tok")
            assert endpoint.calls == 1  # cached
            now[0] = 1010.0  # the token's exp: the cache may not answer any more
            endpoint.tokens["tok"] = {"active": False}
            with pytest.raises(Unauthorized):
                await guard.verify("tok")
            assert endpoint.calls == 2
        finally:
            await guard.aclose()

    run(go)


def test_cache_ttl_bounds_a_long_lived_token() -> None:
    now = [1000.0]
    endpoint = Introspector({"tok": active(1_000_000)})
    guard = make_guard(endpoint, now, cache_ttl=30)

    async def go() -> None:
        try:
            await guard.verify("tok")
            now[0] = 1029.9
            await guard.verify("tok")
            assert endpoint.calls == 1
            now[0] = 1030.0
            endpoint.tokens["tok"] = {"active": False}  # revoked meanwhile
            with pytest.raises(Unauthorized):
                await guard.verify("tok")
            assert endpoint.calls == 2
        finally:
            await guard.aclose()

    run(go)


def test_token_without_exp_or_already_expired_is_not_cached() -> None:
    now = [1000.0]
    no_exp = active(0)
    del no_exp["exp"]
    endpoint = Introspector({"a": no_exp, "b": active(900)})
    guard = make_guard(endpoint, now)

    async def go() -> None:
        try:
            for token in ("a", "a", "b", "b"):
                await guard.verify(token)
            assert endpoint.calls == 4
        finally:
            await guard.aclose()

    run(go)


def test_forget_drops_a_cached_answer_and_the_cache_is_bounded() -> None:
    now = [1000.0]
    endpoint = Introspector({f"t{i}": active(5000) for i in range(5)})
    guard = make_guard(endpoint, now, max_entries=2)

    async def go() -> None:
        try:
            await guard.verify("t0")
            guard.forget("t0")
            await guard.verify("t0")
            assert endpoint.calls == 2
            for token in ("t1", "t2", "t3"):
                await guard.verify(token)
            assert endpoint.calls == 5
            await guard.verify("t3")
            assert endpoint.calls == 5  # still cached
            await guard.verify("t0")
            assert endpoint.calls == 6  # evicted (least recently used)
        finally:
            await guard.aclose()

    run(go)


def test_inactive_token_is_unauthorized() -> None:
    guard = make_guard(Introspector({}), [1000.0])

    async def go() -> None:
        try:
            with pytest.raises(Unauthorized, match="not active"):
                await guard.verify("unknown")
        finally:
            await guard.aclose()

    run(go)


def test_refresh_token_is_not_an_access_token() -> None:
    guard = make_guard(Introspector({"r": active(5000, token_type="refresh_token")}), [1000.0])

    async def go() -> None:
        try:
            with pytest.raises(Unauthorized, match="not an access token"):
                await guard.verify("r")
        finally:
            await guard.aclose()

    run(go)


def test_unreachable_introspection_is_unavailable() -> None:
    guard = Guard(
        issuer="idp-a",
        introspection_url=f"http://127.0.0.1:{free_port()}/idp-a/introspect",
        client_id="svc-x",
        client_secret="s",
    )

    async def go() -> None:
        try:
            with pytest.raises(Unavailable, match="unreachable"):
                await guard.verify("tok")
        finally:
            await guard.aclose()

    run(go)


@pytest.mark.parametrize("status", [401, 500, 503])
def test_introspection_error_status_is_unavailable(status: int) -> None:
    guard = make_guard(lambda _: httpx.Response(status, json={"error": "invalid_client"}), [1000.0])

    async def go() -> None:
        try:
            with pytest.raises(Unavailable, match=str(status)):
                await guard.verify("tok")
        finally:
            await guard.aclose()

    run(go)


# -- Guard.require as a FastAPI dependency ------------------------------------------------


def test_require_checks_header_and_scopes_over_http() -> None:
    endpoint = Introspector({"tok": active(5000)})
    guard = make_guard(endpoint, [1000.0])
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/print")
    async def printing(p: Principal = Depends(guard.require("print"))) -> dict[str, str]:  # noqa: B008
        return {"as": p.acting_user}

    @app.get("/admin")
    async def admin(p: Principal = Depends(guard.require("admin"))) -> dict[str, str]:  # noqa: B008
        return {"as": p.acting_user}

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as http:
                return [
                    await http.get("/print", headers={"Authorization": "Bearer tok"}),
                    await http.get("/print", headers={"Authorization": "bearer   tok  "}),
                    await http.get("/print"),
                    await http.get("/print", headers={"Authorization": "Basic dG9rOg=="}),
                    await http.get("/print", headers={"Authorization": "Bearer "}),
                    await http.get("/print", headers={"Authorization": "Bearer nope"}),
                    await http.get("/admin", headers={"Authorization": "Bearer tok"}),
                ]
        finally:
            await guard.aclose()

    ok, lenient, missing, basic, empty, inactive, scope = run(go)
    assert ok.status_code == 200 and ok.json() == {"as": "dev-1"}
    assert lenient.status_code == 200
    for response in (missing, basic, empty, inactive):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer ")
    assert scope.status_code == 403 and scope.json()["error"] == InsufficientScope.error
    assert json.loads(scope.text)["error_description"] == "token lacks scope: admin"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json=["active"]),
        httpx.Response(200, json={"active": True, "client_id": "dev-1"}),  # no tenant_id
    ],
)
def test_malformed_introspection_answer_is_unavailable(answer: httpx.Response) -> None:
    guard = make_guard(lambda _: answer, [1000.0])

    async def go() -> None:
        try:
            with pytest.raises(Unavailable, match="malformed"):
                await guard.verify("tok")
        finally:
            await guard.aclose()

    run(go)


def test_admin_claim_amr_and_held_release_come_from_introspection() -> None:
    """Issue 11: the issuer's `admin` claim (computed at introspection, cached no longer
    than `cache_ttl`), `amr` and the tenant's `held_release` reach the Principal."""
    now = [1000.0]
    endpoint = Introspector(
        {
            "boss": active(1_000_000, scope="admin print", admin=True),
            "card": active(1_000_000, amr=["card"], held_release="device_local_auth"),
            "text": active(1_000_000, scope="admin", admin="true"),  # not a JSON true
        }
    )
    guard = make_guard(endpoint, now, cache_ttl=30)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/admin")
    async def admin(p: Principal = Depends(guard.require("admin", admin=True))) -> dict[str, str]:  # noqa: B008
        return {"as": p.acting_user}

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as http:
                card = await guard.verify("card")
                assert card.amr == frozenset({"card"}) and not card.admin
                assert card.held_release == "device_local_auth"
                boss = await guard.verify("boss")
                assert boss.admin and boss.amr == frozenset()
                assert boss.held_release == "card_or_owner"  # an issuer that does not say
                answers = [
                    await http.get("/admin", headers={"Authorization": "Bearer boss"}),
                    await http.get("/admin", headers={"Authorization": "Bearer text"}),
                ]
                endpoint.tokens["boss"] = active(1_000_000, scope="admin print", admin=False)
                now[0] = 1029.9  # demoted, but the guard's cache still answers
                answers.append(await http.get("/admin", headers={"Authorization": "Bearer boss"}))
                now[0] = 1030.0  # the cache has passed: the issuer says no
                answers.append(await http.get("/admin", headers={"Authorization": "Bearer boss"}))
                return answers
        finally:
            await guard.aclose()

    ok, text, cached, demoted = run(go)
    assert ok.status_code == 200 and cached.status_code == 200
    for refused in (text, demoted):
        assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
        assert "administrator" in refused.json()["error_description"]
