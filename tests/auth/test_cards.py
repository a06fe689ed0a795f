"""ID-card login with first-use registration (seed 004) at the token endpoint, over real HTTP,
on SQLite and PostgreSQL: the tenant's own user store as the directory here; LDAP in
test_cards_ldap.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from printcloud.auth import cards, service
from printcloud.auth.models import AuditEvent
from printcloud.core.db import utcnow
from tests.conftest import Stack, make_settings, start_stack
from tests.helpers.oauth import card_login


@pytest.fixture
def tenant(stack: Stack) -> dict[str, Any]:
    tenant_id = stack.tenant(local_auth_cooperation=True)
    stack.user(tenant_id, "alice", "alice-password-1")
    stack.user(tenant_id, "bob", "bob-password-22")
    device = stack.client(tenant_id, kind="device", scope="device print")
    return {"id": tenant_id, "device": device}


def test_unknown_card_is_an_inquiry_then_registration_then_login(
    stack: Stack, tenant: dict[str, Any]
) -> None:
    device = tenant["device"]
    first = card_login(stack, device, "04:A2:B3:C4:D5")
    assert first.status_code == 400
    assert first.json()["error"] == "registration_required"
    assert "username" in first.json()["error_description"]

    wrong = card_login(stack, device, "04A2B3C4D5", username="alice", password="not-it")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"
    with stack.db.sessions() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant["id"])
        assert cards.list_bindings(s, tenant=t) == []  # nothing stored

    registered = card_login(
        stack, device, "04a2b3c4d5", username="alice", password="alice-password-1"
    )
    assert registered.status_code == 200, registered.text
    body = registered.json()
    assert body["registered"] is True and body["local_user"]["id"] == "alice"
    # the token carries the user through seed 001's local_user path
    info = httpx.post(
        f"{stack.issuer_url()}/introspect", data={"token": body["access_token"]}, auth=device
    ).json()
    assert info["active"] and info["local_user"]["id"] == "alice"
    assert info["tenant_id"] == tenant["id"]

    again = card_login(stack, device, "04 A2 B3 C4 D5")  # the same card, as another reader types it
    assert again.status_code == 200 and again.json()["registered"] is False
    assert again.json()["local_user"]["name"] == "alice"

    with stack.db.sessions() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant["id"])
        rows = cards.list_bindings(s, tenant=t)
        assert len(rows) == 1 and rows[0].hint == "…C4D5" and rows[0].user.username == "alice"
        # the card ID is not stored, only a keyed hash of it
        assert "04A2B3C4D5" not in rows[0].card_digest
        actions = [
            e.action
            for e in s.scalars(select(AuditEvent).where(AuditEvent.tenant_pk == t.pk))
            if e.target == "alice"
        ]
        assert "card.registered" in actions


def test_a_card_moves_when_another_user_registers_it(stack: Stack, tenant: dict[str, Any]) -> None:
    device = tenant["device"]
    card = "CAFEBABE01"
    assert card_login(stack, device, card, username="alice", password="alice-password-1").is_success
    moved = card_login(stack, device, card, username="bob", password="bob-password-22")
    assert moved.status_code == 200 and moved.json()["local_user"]["id"] == "bob"
    assert card_login(stack, device, card).json()["local_user"]["id"] == "bob"
    with stack.db.sessions() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant["id"])
        bound = cards.list_bindings(s, tenant=t)
        assert [b.user.username for b in bound] == ["bob"]
        assert any(
            e.action == "card.moved" and e.details.get("from") == "alice"
            for e in s.scalars(select(AuditEvent).where(AuditEvent.tenant_pk == t.pk))
        )


def test_a_card_of_one_tenant_means_nothing_in_another(
    stack: Stack, tenant: dict[str, Any]
) -> None:
    card = "0011223344"
    assert card_login(
        stack, tenant["device"], card, username="alice", password="alice-password-1"
    ).is_success
    other = stack.tenant()
    stack.user(other, "alice", "other-alice-pw")
    other_device = stack.client(other, kind="device", scope="device")
    answer = card_login(stack, other_device, card)
    assert answer.status_code == 400 and answer.json()["error"] == "registration_required"
    # and the first tenant's password does not register it in the second
    refused = card_login(stack, other_device, card, username="alice", password="alice-password-1")
    assert refused.status_code == 401


def test_only_device_clients_and_bad_card_ids(stack: Stack, tenant: dict[str, Any]) -> None:
    app = stack.client(tenant["id"], scope="print")
    refused = card_login(stack, app, "0011223344")
    assert refused.status_code in (400, 401) and refused.json()["error"] == "unauthorized_client"
    for bad in ("", "12", "x" * 200, "card\x01id"):
        answer = card_login(stack, tenant["device"], bad)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"] in ("invalid_request",)


def test_bindings_older_than_the_period_are_deleted_and_a_login_refreshes(
    stack: Stack, tenant: dict[str, Any]
) -> None:
    device = tenant["device"]
    for card, user, pw in (
        ("AAAA0001", "alice", "alice-password-1"),
        ("BBBB0002", "bob", "bob-password-22"),
    ):
        assert card_login(stack, device, card, username=user, password=pw).is_success
    stack.set_tenant(tenant["id"], card_retention_days=30)
    with stack.db.session() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant["id"])
        for b in cards.list_bindings(s, tenant=t):
            b.last_login_at = utcnow() - timedelta(days=20)
    assert card_login(stack, device, "AAAA0001").is_success  # alice's login refreshes hers
    with stack.db.session() as s:
        gone = cards.expire_bindings(s, now=utcnow() + timedelta(days=15))
    mine = [g for g in gone if g[0] == tenant["id"]]
    assert [(u, h) for _, u, h in mine] == [("bob", "…0002")]
    assert card_login(stack, device, "AAAA0001").is_success
    assert card_login(stack, device, "BBBB0002").json()["error"] == "registration_required"
    with stack.db.sessions() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant["id"])
        assert any(
            e.action == "card.expired" and e.target == "bob"
            for e in s.scalars(select(AuditEvent).where(AuditEvent.tenant_pk == t.pk))
        )


def test_brute_force_is_locked_out_and_shown_to_the_admin(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, None, card_failures_allowed=3, card_lockout_seconds=60)
    live, server, thread = start_stack(settings)
    try:
        tenant_id = live.tenant()
        live.user(tenant_id, "alice", "alice-password-1")
        live.user(tenant_id, "root", "root-password-1", admin=True)
        device = live.client(tenant_id, kind="device", scope="device")
        # guessing card IDs from one device: locked out after 4 x 3 unknown cards
        codes = [card_login(live, device, f"GUESS{i:05d}").status_code for i in range(14)]
        assert codes[:12] == [400] * 12 and codes[-1] == 429
        # guessing a password for one card: locked out after 3 wrong ones
        other_device = live.client(tenant_id, kind="device", scope="device")
        tries = [
            card_login(live, other_device, "FEEDF00D", username="alice", password=f"guess-{i}")
            for i in range(5)
        ]
        assert [t.status_code for t in tries][:3] == [401, 401, 401]
        assert tries[-1].status_code == 429 and int(tries[-1].headers["Retry-After"]) > 0
        # even the right password waits for the lockout to end
        late = card_login(
            live, other_device, "FEEDF00D", username="alice", password="alice-password-1"
        )
        assert late.status_code == 429
        admin = httpx.post(
            f"{live.issuer_url()}/token",
            data={"grant_type": "client_credentials", "scope": "admin"},
            auth=live.settings.service_client("idp-a", "auth"),
        ).json()["access_token"]
        locks = httpx.get(
            f"{live.issuer_url()}/api/admin/tenants/{tenant_id}/card-lockouts",
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        kinds = {lock["kind"] for lock in locks}
        assert {"device", "card", "account"} <= kinds, locks
        assert all("FEEDF00D" not in lock["key"] for lock in locks)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        live.db.dispose()
