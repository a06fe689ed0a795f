"""The admin HTTP API over real HTTP, on SQLite and PostgreSQL.

Tokens are obtained the way a real admin tool would: the admin signs in at
the login page, and a platform service exchanges the browser session for a
token with scope `admin` (RFC 8693); platform-wide calls use a service
client's client-credentials token.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from printcloud.auth import service
from tests.conftest import Stack
from tests.helpers.admin import (
    ISSUER,
    PASSWORD,
    Api,
    login,
    service_token,
    user_token,
)
from tests.helpers.worlds import World


@pytest.fixture(scope="module")
def world(stack: Stack) -> World[Api]:
    tenant, other = stack.tenant(prefix="adm"), stack.tenant(prefix="oth")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    stack.user(tenant, "member", PASSWORD)
    stack.user(other, "otherboss", PASSWORD, admin=True)
    stack.user(other, "bob", PASSWORD)
    return World(
        stack=stack,
        tenant=tenant,
        other=other,
        admin=Api(stack, user_token(stack, tenant, "boss")),
        other_admin=Api(stack, user_token(stack, other, "otherboss")),
        member=Api(stack, user_token(stack, tenant, "member")),
        system=Api(stack, service_token(stack)),
    )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    assert body["error"] and body["error_description"]
    return body


def audit_events(api: Api, tenant: str) -> list[dict[str, Any]]:
    answer = api.get(f"/tenants/{tenant}/audit", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()
    return events


# -- who may call --------------------------------------------------------------------


def test_missing_or_bad_token_is_401(world: World[Api]) -> None:
    path = f"/tenants/{world.tenant}"
    anonymous = Api(world.stack, None)
    answer = anonymous.get(path)
    assert error_of(answer, 401)["error"] == "invalid_token"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert error_of(Api(world.stack, "not-a-token").get(path), 401)["error"] == "invalid_token"
    assert error_of(anonymous.http.get(path, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)


def test_token_without_admin_role_or_scope_is_403(world: World[Api]) -> None:
    path = f"/tenants/{world.tenant}/users"
    # A user who is not an administrator is never issued the scope `admin`.
    assert error_of(world.member.get(path), 403)["error"] == "insufficient_scope"
    # The admin's own token without scope `admin`.
    profile_only = Api(world.stack, user_token(world.stack, world.tenant, "boss", scope="profile"))
    assert error_of(profile_only.get(path), 403)["error"] == "insufficient_scope"
    # A tenant client cannot carry scope `admin` (issue 11, item 8: only the platform's own
    # clients may), and one acting for itself is no administrator anyway.
    created = world.admin.post(
        f"/tenants/{world.tenant}/clients",
        json={"name": "robot", "scope": "admin print", "grant_types": ["client_credentials"]},
    )
    assert error_of(created, 400)["field"] == "scope"
    client_id, secret = world.stack.client(
        world.tenant, scope="print", grant_types=["client_credentials"]
    )
    assert secret
    token = httpx.post(
        f"{world.stack.issuer_url(ISSUER)}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "print"},
    ).json()["access_token"]
    assert error_of(Api(world.stack, token).get(path), 403)["error"] == "insufficient_scope"


def test_demoted_admin_loses_access_at_once(world: World[Api]) -> None:
    stack = world.stack
    stack.user(world.tenant, "shortlived", PASSWORD, admin=True)
    api = Api(stack, user_token(stack, world.tenant, "shortlived"))
    assert api.get(f"/tenants/{world.tenant}").status_code == 200
    answer = world.admin.patch(
        f"/tenants/{world.tenant}/users/shortlived", json={"is_admin": False}
    )
    assert answer.status_code == 200 and answer.json()["is_admin"] is False
    # The guard may still cache the token as active; the admin check reads the database each time.
    assert error_of(api.get(f"/tenants/{world.tenant}"), 403)


# -- tenants -----------------------------------------------------------------------------


def test_tenant_settings(world: World[Api]) -> None:
    path = f"/tenants/{world.tenant}"
    before = world.admin.get(path).json()
    assert before["tenant_id"] == world.tenant and before["issuer"] == ISSUER
    assert before["local_auth_cooperation"] is False
    answer = world.admin.patch(
        path,
        json={
            "local_auth_cooperation": True,
            "users_may_grant_tenant_consent": True,
            "name": "Renamed",
        },
    )
    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert (
        after["local_auth_cooperation"] is True and after["users_may_grant_tenant_consent"] is True
    )
    assert after["name"] == "Renamed" and world.admin.get(path).json() == after
    event = next(
        e for e in audit_events(world.admin, world.tenant) if e["action"] == "tenant.settings"
    )
    assert event["actor"] == "user:boss"
    assert event["details"]["local_auth_cooperation"] is True

    assert error_of(world.admin.patch(path, json={"local_auth_cooperation": "perhaps"}), 400)[
        "field"
    ] == ("local_auth_cooperation")
    assert error_of(world.admin.patch(path, json={"colour": "blue"}), 400)["field"] == "colour"
    assert error_of(world.admin.patch(path, json={"name": "x" * 201}), 400)["field"] == "name"
    assert error_of(
        world.admin.patch(path, content=b"{not json", headers={"content-type": "application/json"}),
        400,
    )
    world.admin.patch(
        path, json={"local_auth_cooperation": False, "users_may_grant_tenant_consent": False}
    )


def test_tenant_admin_cannot_manage_the_tenant_list(world: World[Api]) -> None:
    assert error_of(world.admin.get("/tenants"), 403)
    assert error_of(world.admin.post("/tenants", json={"tenant_id": "sneaky"}), 403)
    assert error_of(world.admin.delete(f"/tenants/{world.tenant}"), 403)
    assert world.admin.get(f"/tenants/{world.tenant}").status_code == 200


def test_system_manages_tenants(world: World[Api]) -> None:
    api = world.system
    new = f"sys{secrets.token_hex(4)}"
    created = api.post("/tenants", json={"tenant_id": new, "name": "Made by the platform"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Made by the platform"
    assert new in [t["tenant_id"] for t in api.get("/tenants").json()]
    assert error_of(api.post("/tenants", json={"tenant_id": new}), 409)["field"] == "tenant_id"
    assert (
        error_of(api.post("/tenants", json={"tenant_id": "bad id!"}), 400)["field"] == "tenant_id"
    )
    assert error_of(api.post("/tenants", json={"tenant_id": "x" * 65}), 400)["field"] == "tenant_id"
    assert error_of(api.post("/tenants", json={}), 400)["field"] == "tenant_id"
    # The platform manages the new tenant's users and reads every tenant.
    user = api.post(
        f"/tenants/{new}/users", json={"username": "first", "password": PASSWORD, "is_admin": True}
    )
    assert user.status_code == 201, user.text
    assert api.get(f"/tenants/{world.tenant}/users").status_code == 200
    assert error_of(api.delete("/tenants/system"), 400)["field"] == "tenant_id"
    assert api.delete(f"/tenants/{new}").status_code == 204
    assert error_of(api.get(f"/tenants/{new}"), 404)
    assert error_of(api.delete(f"/tenants/{new}"), 404)


def test_system_admin_user_token(world: World[Api]) -> None:
    stack = world.stack
    name = f"root{secrets.token_hex(3)}"
    stack.user("system", name, PASSWORD, admin=True)
    api = Api(stack, user_token(stack, "system", name))
    assert world.other in [t["tenant_id"] for t in api.get("/tenants").json()]
    answer = api.patch(f"/tenants/{world.other}", json={"name": "Named by root"})
    assert answer.status_code == 200
    actors = [
        e["actor"] for e in audit_events(api, world.other) if e["action"] == "tenant.settings"
    ]
    assert f"user:{name}" in actors


# -- tenant isolation ---------------------------------------------------------------------


def test_another_tenant_answers_404_and_stays_untouched(world: World[Api]) -> None:
    api, other = world.admin, world.other
    client_id, _ = world.stack.client(other, name="theirs")
    reads = [
        f"/tenants/{other}",
        f"/tenants/{other}/users",
        f"/tenants/{other}/users/bob",
        f"/tenants/{other}/clients",
        f"/tenants/{other}/clients/{client_id}",
        f"/tenants/{other}/consents",
        f"/tenants/{other}/user-consents",
        f"/tenants/{other}/audit",
        "/tenants/no-such-tenant",
    ]
    for path in reads:
        answer = api.get(path)
        body = error_of(answer, 404)
        assert "bob" not in answer.text and client_id not in answer.text, path
        assert body["error"] == "not_found"
    # Another tenant and one that does not exist answer alike.
    assert api.get(f"/tenants/{other}").json()["error_description"].replace(other, "X") == (
        api.get("/tenants/no-such-tenant")
        .json()["error_description"]
        .replace("no-such-tenant", "X")
    )
    writes = [
        ("patch", f"/tenants/{other}", {"json": {"local_auth_cooperation": True}}),
        ("delete", f"/tenants/{other}", {}),
        (
            "post",
            f"/tenants/{other}/users",
            {"json": {"username": "intruder", "password": PASSWORD}},
        ),
        ("patch", f"/tenants/{other}/users/bob", {"json": {"disabled": True}}),
        ("delete", f"/tenants/{other}/users/bob", {}),
        (
            "post",
            f"/tenants/{other}/clients",
            {"json": {"name": "x", "grant_types": ["client_credentials"]}},
        ),
        ("patch", f"/tenants/{other}/clients/{client_id}", {"json": {"disabled": True}}),
        ("post", f"/tenants/{other}/clients/{client_id}/rotate-secret", {}),
        ("delete", f"/tenants/{other}/clients/{client_id}", {}),
        ("post", f"/tenants/{other}/consents/1/revoke", {}),
        ("delete", f"/tenants/{other}/user-consents/1", {}),
    ]
    for method, path, kwargs in writes:
        assert error_of(api.request(method.upper(), path, **kwargs), 404), path
    # Nothing changed over there.
    theirs = world.other_admin
    assert theirs.get(f"/tenants/{other}").json()["local_auth_cooperation"] is False
    bob = theirs.get(f"/tenants/{other}/users/bob").json()
    assert bob["disabled"] is False
    assert "intruder" not in [u["username"] for u in theirs.get(f"/tenants/{other}/users").json()]
    assert theirs.get(f"/tenants/{other}/clients/{client_id}").json()["disabled"] is False
    # ... and the other admin is just as confined.
    assert error_of(theirs.get(f"/tenants/{world.tenant}/users"), 404)


# -- users ------------------------------------------------------------------------------------


def test_user_lifecycle(world: World[Api]) -> None:
    api, base = world.admin, f"/tenants/{world.tenant}/users"
    created = api.post(
        base,
        json={
            "username": "carol",
            "password": PASSWORD,
            "display_name": "Carol C",
            "email": "carol@example.com",
        },
    )
    assert created.status_code == 201, created.text
    carol = created.json()
    assert (
        carol["username"] == "carol" and carol["is_admin"] is False and carol["disabled"] is False
    )
    assert "password" not in created.text and "password_hash" not in carol
    assert "carol" in [u["username"] for u in api.get(base).json()]
    assert api.get(f"{base}/carol").json() == carol

    conflict = error_of(api.post(base, json={"username": "carol", "password": PASSWORD}), 409)
    assert conflict["field"] == "username"

    changed = api.patch(
        f"{base}/carol",
        json={"display_name": "Carol Changed", "is_admin": True, "password": "another good one"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["display_name"] == "Carol Changed" and changed.json()["is_admin"] is True
    login(world.stack, world.tenant, "carol", "another good one")  # the new password works

    session_id = login(world.stack, world.tenant, "carol", "another good one")
    assert api.patch(f"{base}/carol", json={"disabled": True}).json()["disabled"] is True
    with world.stack.db.session() as db:  # disabling ended her sessions
        assert service.find_session(db, issuer=ISSUER, session_id=session_id) is None

    assert api.delete(f"{base}/carol").status_code == 204
    assert error_of(api.get(f"{base}/carol"), 404)
    assert error_of(api.delete(f"{base}/carol"), 404)
    actions = [(e["action"], e["target"], e["actor"]) for e in audit_events(api, world.tenant)]
    for action in ("user.create", "user.update", "user.delete"):
        assert (action, "carol", "user:boss") in actions


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": "u" * 129, "password": PASSWORD}, "username"),
        ({"username": "shorty", "password": "short"}, "password"),
        ({"username": "huge", "password": "p" * 1025}, "password"),
        ({"username": "dn", "password": PASSWORD, "display_name": "d" * 201}, "display_name"),
        ({"username": "typo", "password": PASSWORD, "is_admn": True}, "is_admn"),
        ({"username": "adm", "password": PASSWORD, "is_admin": "very"}, "is_admin"),
    ],
)
def test_bad_user_bodies_name_the_field(
    world: World[Api], body: dict[str, Any], field: str
) -> None:
    answer = world.admin.post(f"/tenants/{world.tenant}/users", json=body)
    assert error_of(answer, 400)["field"] == field


def test_admin_cannot_lock_themselves_out(world: World[Api]) -> None:
    me = f"/tenants/{world.tenant}/users/boss"
    assert error_of(world.admin.delete(me), 400)["field"] == "username"
    assert error_of(world.admin.patch(me, json={"disabled": True}), 400)["field"] == "disabled"
    assert error_of(world.admin.patch(me, json={"is_admin": False}), 400)["field"] == "is_admin"
    assert (
        world.admin.patch(me, json={"display_name": "The Boss"}).json()["display_name"]
        == "The Boss"
    )


# -- clients ----------------------------------------------------------------------------------


def test_client_lifecycle(world: World[Api]) -> None:
    api, base = world.admin, f"/tenants/{world.tenant}/clients"
    token_url = f"{world.stack.issuer_url(ISSUER)}/token"
    created = api.post(
        base,
        json={
            "name": "Billing app",
            "kind": "confidential",
            "client_id": "billing-app",
            "redirect_uris": ["https://billing.example/cb"],
            "scope": "print profile",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["client_secret"]
    assert body["client_id"] == "billing-app" and secret and body["scope"] == "print profile"
    assert "authorization_code" in body["grant_types"]
    # The secret is shown once: no read answers it again.
    assert "client_secret" not in api.get(f"{base}/billing-app").json()
    assert secret not in api.get(base).text
    assert "billing-app" in [c["client_id"] for c in api.get(base).json()]

    def client_credentials(password: str) -> int:
        return httpx.post(
            token_url,
            auth=("billing-app", password),
            data={"grant_type": "client_credentials", "scope": "print"},
        ).status_code

    assert client_credentials(secret) == 200
    rotated = api.post(f"{base}/billing-app/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret and new_secret != secret
    assert client_credentials(new_secret) == 200
    assert client_credentials(secret) == 401

    changed = api.patch(
        f"{base}/billing-app",
        json={
            "name": "Billing",
            "scope": "print",
            "redirect_uris": ["https://billing.example/cb2"],
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["redirect_uris"] == ["https://billing.example/cb2"]
    assert api.patch(f"{base}/billing-app", json={"disabled": True}).json()["disabled"] is True
    assert client_credentials(new_secret) == 401

    assert (
        error_of(
            api.post(
                base,
                json={
                    "name": "again",
                    "client_id": "billing-app",
                    "grant_types": ["client_credentials"],
                },
            ),
            409,
        )["field"]
        == "client_id"
    )
    assert api.delete(f"{base}/billing-app").status_code == 204
    assert error_of(api.get(f"{base}/billing-app"), 404)
    actions = [(e["action"], e["target"]) for e in audit_events(api, world.tenant)]
    for action in ("client.create", "client.rotate_secret", "client.update", "client.delete"):
        assert (action, "billing-app") in actions


def test_public_client_has_no_secret(world: World[Api]) -> None:
    base = f"/tenants/{world.tenant}/clients"
    created = world.admin.post(
        base,
        json={"name": "Phone app", "kind": "public", "redirect_uris": ["http://127.0.0.1:8765/cb"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["client_secret"] is None
    rotate = world.admin.post(f"{base}/{created.json()['client_id']}/rotate-secret")
    assert error_of(rotate, 400)["field"] == "client_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "kind": "robot"}, "kind"),
        ({"name": "x", "kind": "service"}, "kind"),
        ({"name": "x", "scope": "print everything"}, "scope"),
        ({"name": "x", "grant_types": ["password"]}, "grant_types"),
        ({"name": "x", "redirect_uris": ["not a uri"]}, "redirect_uris"),
        ({"name": "x", "redirect_uris": ["https://a.example/cb#frag"]}, "redirect_uris"),
        ({"name": "x", "redirect_uris": "https://a.example/cb"}, "redirect_uris"),
        (
            {
                "name": "x",
                "kind": "public",
                "grant_types": ["client_credentials"],
                "redirect_uris": ["https://a.example/cb"],
            },
            "grant_types",
        ),
        ({"name": "x", "client_id": "no spaces please"}, "client_id"),
        ({"name": "x", "secret": "mine"}, "secret"),
    ],
)
def test_bad_client_bodies_name_the_field(
    world: World[Api], body: dict[str, Any], field: str
) -> None:
    answer = world.admin.post(f"/tenants/{world.tenant}/clients", json=body)
    assert error_of(answer, 400)["field"] == field


def test_platform_service_clients_are_protected(world: World[Api]) -> None:
    client_id, _ = world.stack.settings.service_client(ISSUER, "printing")
    base = f"/tenants/system/clients/{client_id}"
    assert world.system.get(base).json()["kind"] == "service"
    assert error_of(world.system.post(f"{base}/rotate-secret"), 400)["field"] == "client_id"
    assert error_of(world.system.delete(base), 400)["field"] == "client_id"
    assert error_of(world.system.patch(base, json={"disabled": True}), 400)["field"] == "client_id"
    assert service_token(world.stack)  # the platform's clients still work


# -- consents (seed 002) and audit --------------------------------------------------------------


def test_consents_are_listed_and_revoked_with_who_and_when(world: World[Api]) -> None:
    stack, api = world.stack, world.admin
    device_id, _ = stack.client(
        world.tenant, kind="device", name="Lobby MFP", scope="print profile"
    )
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant)
        boss = service.get_user(db, tenant=tenant, username="boss")
        member = service.get_user(db, tenant=tenant, username="member")
        device = service.get_client(db, tenant=tenant, client_id=device_id)
        service.grant_tenant_consent(db, tenant=tenant, user=boss, client=device, scope="print")
        service.remember_user_consent(
            db, tenant=tenant, user=member, client=device, scope="print profile"
        )
    base = f"/tenants/{world.tenant}"

    consents = [c for c in api.get(f"{base}/consents").json() if c["client_id"] == device_id]
    assert len(consents) == 1
    consent = consents[0]
    assert consent["granted_by"] == "user:boss" and consent["granted_at"]
    assert (
        consent["active"] is True
        and consent["revoked_at"] is None
        and consent["client_name"] == "Lobby MFP"
    )

    revoked = api.post(f"{base}/consents/{consent['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_by"] == "user:boss" and revoked.json()["revoked_at"]
    assert revoked.json()["active"] is False
    # Kept as history, hidden on request; revoking again changes nothing.
    assert consent["id"] in [c["id"] for c in api.get(f"{base}/consents").json()]
    assert consent["id"] not in [
        c["id"] for c in api.get(f"{base}/consents", params={"history": "false"}).json()
    ]
    assert api.post(f"{base}/consents/{consent['id']}/revoke").json() == revoked.json()
    events = [
        e
        for e in audit_events(api, world.tenant)
        if e["action"] == "consent.tenant.revoke" and e["target"] == device_id
    ]
    assert len(events) == 1 and events[0]["actor"] == "user:boss" and events[0]["at"]
    assert events[0]["details"] == {"consent": consent["id"]}

    mine = [c for c in api.get(f"{base}/user-consents").json() if c["client_id"] == device_id]
    assert [(c["username"], c["scope"]) for c in mine] == [("member", "print profile")]
    assert api.delete(f"{base}/user-consents/{mine[0]['id']}").status_code == 204
    assert device_id not in [c["client_id"] for c in api.get(f"{base}/user-consents").json()]
    assert error_of(api.delete(f"{base}/user-consents/{mine[0]['id']}"), 404)
    event = next(e for e in audit_events(api, world.tenant) if e["action"] == "consent.user.revoke")
    assert event["actor"] == "user:boss" and event["target"] == str(mine[0]["id"])

    assert error_of(api.post(f"{base}/consents/999999999/revoke"), 404)
    assert error_of(api.post(f"{base}/consents/99999999999/revoke"), 400)["field"] == "consent_id"
    assert error_of(api.post(f"{base}/consents/abc/revoke"), 400)["field"] == "consent_id"


def test_audit_log(world: World[Api]) -> None:
    api = world.admin
    events = audit_events(api, world.tenant)
    assert events and {"id", "at", "actor", "action", "target", "details"} <= set(events[0])
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    assert len(api.get(f"/tenants/{world.tenant}/audit", params={"limit": 1}).json()) == 1
    assert (
        error_of(api.get(f"/tenants/{world.tenant}/audit", params={"limit": 0}), 400)["field"]
        == "limit"
    )
    # Only this tenant's events: the other tenant's users never appear.
    assert all(e["target"] not in ("otherboss", "bob") for e in events)


def test_openapi_documents_the_admin_api(world: World[Api]) -> None:
    spec = httpx.get(f"{world.stack.base_url}/openapi.json").json()
    paths = {p: ops for p, ops in spec["paths"].items() if "/api/admin/" in p}
    assert "/{issuer}/api/admin/tenants/{tenant_id}/clients/{client_id}/rotate-secret" in paths
    for ops in paths.values():
        for op in ops.values():
            assert op["tags"] == ["admin"]
    schemas = spec["components"]["schemas"]
    for name in (
        "TenantCreate",
        "TenantRead",
        "TenantSettingsUpdate",
        "UserCreate",
        "UserUpdate",
        "UserRead",
        "ClientCreate",
        "ClientUpdate",
        "ClientRead",
        "ClientCreated",
        "TenantConsentRead",
        "UserConsentRead",
        "AuditEventRead",
    ):
        assert name in schemas, name
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_nul_characters_are_bad_input_not_server_errors(world: World[Api]) -> None:
    # PostgreSQL text cannot hold NUL: the API must refuse it as input, naming the field.
    api, base = world.system, f"/tenants/{world.tenant}"
    assert error_of(api.get("/tenants/a%00b"), 400)["field"] == "tenant_id"
    assert error_of(api.get(f"{base}/users/a%00b"), 400)["field"] == "username"
    assert (
        error_of(api.post("/tenants", json={"tenant_id": "nul", "name": "a\u0000b"}), 400)["field"]
        == "name"
    )
    body = {"name": "a\u0000b", "grant_types": ["client_credentials"]}
    assert error_of(api.post(f"{base}/clients", json=body), 400)["field"] == "name"
    body = {"name": "x", "redirect_uris": ["https://a.example/\u0000"]}
    assert error_of(api.post(f"{base}/clients", json=body), 400)["field"].startswith(
        "redirect_uris"
    )
