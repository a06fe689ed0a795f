"""Card registration against a real OpenLDAP directory (seed 004's second authentication
server), through the token endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from printcloud.auth import cards, service
from printcloud.auth.models import CardBinding, Directory, User
from printcloud.core.crypto import SecretBox
from tests.conftest import Stack
from tests.helpers.oauth import card_login
from tests.ldap_server import Slapd, start_slapd


def _ldap_tenant(stack: Stack, slapd: Slapd, **overrides: Any) -> dict[str, Any]:
    tenant_id = stack.tenant(local_auth_cooperation=True)
    with stack.db.session() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant_id)
        cards.set_directory(
            s,
            tenant=t,
            box=SecretBox(stack.settings.instance_secrets),
            egress=stack.settings.egress_policy,
            actor="test",
            kind="ldap",
            url=overrides.get("url", slapd.url),
            base_dn=slapd.base_dn,
            bind_dn=slapd.reader_dn,
            bind_password=slapd.reader_password,
            timeout=30,
        )
    return {"id": tenant_id, "device": stack.client(tenant_id, kind="device", scope="device")}


def test_ldap_credentials_bind_the_card_and_wrong_ones_do_not(stack: Stack, slapd: Slapd) -> None:
    t = _ldap_tenant(stack, slapd)
    device = t["device"]
    card = "LDAP000001"
    for username, password in (
        ("alice", "wrong password"),
        ("nobody", "whatever"),
        ("*", slapd.passwords["alice"]),
        ("alice)(uid=*", slapd.passwords["alice"]),
    ):
        refused = card_login(stack, device, card, username=username, password=password)
        assert refused.status_code == 401, (username, refused.text)
        assert refused.json()["error"] == "invalid_credentials"
    with stack.db.sessions() as s:
        tenant = service.get_tenant(s, issuer="idp-a", tenant_id=t["id"])
        assert cards.list_bindings(s, tenant=tenant) == []
        assert s.scalar(select(User).where(User.tenant_pk == tenant.pk)) is None

    ok = card_login(stack, device, card, username="alice", password=slapd.passwords["alice"])
    assert ok.status_code == 200, ok.text
    assert ok.json()["local_user"] == {"id": "alice", "name": "Alice Liddell", "via": "card"}
    assert card_login(stack, device, card).json()["local_user"]["id"] == "alice"
    with stack.db.sessions() as s:
        tenant = service.get_tenant(s, issuer="idp-a", tenant_id=t["id"])
        user = s.scalar(select(User).where(User.tenant_pk == tenant.pk))
        assert user is not None and user.source == "ldap" and user.password_hash is None
        assert user.email == "alice@example.org"
        (binding,) = cards.list_bindings(s, tenant=tenant)
        assert binding.directory == "ldap"
        # the service account's password is stored sealed, never in clear
        row = s.scalar(select(Directory).where(Directory.tenant_pk == tenant.pk))
        assert row is not None and slapd.reader_password not in (row.bind_password_sealed or "")


def test_a_directory_that_is_down_is_a_clear_error_and_binds_nothing(stack: Stack) -> None:
    own = start_slapd()
    try:
        t = _ldap_tenant(stack, own)
        own.stop()
        answer = card_login(
            stack, t["device"], "DOWN000001", username="alice", password=own.passwords["alice"]
        )
        assert answer.status_code == 503
        assert answer.json()["error"] == "directory_unavailable"
        assert "directory unavailable" in answer.json()["error_description"]
        with stack.db.sessions() as s:
            tenant = service.get_tenant(s, issuer="idp-a", tenant_id=t["id"])
            assert s.scalar(select(CardBinding).where(CardBinding.tenant_pk == tenant.pk)) is None
        own.start()  # back: the same request works
        again = card_login(
            stack, t["device"], "DOWN000001", username="alice", password=own.passwords["alice"]
        )
        assert again.status_code == 200, again.text
    finally:
        own.close()


def test_directories_are_per_tenant(stack: Stack, slapd: Slapd) -> None:
    ldap = _ldap_tenant(stack, slapd)
    builtin = stack.tenant()
    stack.user(builtin, "alice", "builtin-alice-pw")
    device = stack.client(builtin, kind="device", scope="device")
    # the LDAP password means nothing in the tenant whose directory is its own user store
    refused = card_login(
        stack, device, "TEN0000001", username="alice", password=slapd.passwords["alice"]
    )
    assert refused.status_code == 401
    assert card_login(
        stack, device, "TEN0000001", username="alice", password="builtin-alice-pw"
    ).is_success
    # and the builtin password means nothing to the LDAP tenant
    assert (
        card_login(
            stack, ldap["device"], "TEN0000001", username="alice", password="builtin-alice-pw"
        ).status_code
        == 401
    )
