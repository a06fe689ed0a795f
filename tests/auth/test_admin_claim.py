"""The `admin` claim and scope (issue 11, item 8), over real HTTP on every database.

The scope alone made an administrator in printing and docgen: a demoted admin kept
access until the token expired, and any confidential client given `admin` acted as
one. Now introspection answers an `admin` claim computed at that moment (the token's
user is an administrator of its tenant now, or the token is a platform service's
own), and only the platform's own clients may hold or ask for the scope `admin`.
(The resource servers' side, printing and docgen refusing a demoted admin once their
guard's cache has passed, is in tests/printing/test_held_release.py.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from printcloud.auth.models import Client
from printcloud.core.db import Database, utcnow
from printcloud.core.errors import InvalidRequest
from tests.conftest import PG_URL, Stack, _pg_admin_url, require_peer
from tests.helpers.browser import Browser
from tests.helpers.oauth import REDIRECT, Setup, introspect, pkce, query_of

PASSWORD = "correct horse battery"


def new_pg_database() -> tuple[str, Callable[[], None]]:
    """A PostgreSQL database of the test's own, and how to drop it."""
    require_peer(
        bool(PG_URL),
        "no PostgreSQL at PRINTCLOUD_TEST_DATABASE_URL or 127.0.0.1:5432",
    )
    name = f"pc_mig_{secrets.token_hex(4)}"
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False), drop


def service_admin(stack: Stack) -> httpx.Client:
    """The admin API as the platform's own auth service client."""
    answer = httpx.post(
        f"{stack.issuer_url()}/token",
        auth=stack.settings.service_client("idp-a", "auth"),
        data={"grant_type": "client_credentials", "scope": "admin"},
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    return httpx.Client(
        base_url=f"{stack.issuer_url()}/api/admin",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_introspection_says_whether_the_token_acts_as_an_admin_now(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    stack.user(tenant, "boss", PASSWORD, admin=True)
    stack.user(tenant, "member", PASSWORD)
    boss = stack.user_token(tenant, "boss", PASSWORD, "admin print")
    member = stack.user_token(tenant, "member", PASSWORD, "print")
    info = introspect(stack, meta, boss)
    assert info["active"] is True and info["admin"] is True and "admin" in info["scope"].split()
    assert introspect(stack, meta, member)["admin"] is False
    device_id, device_secret = stack.client(tenant, kind="device", scope="print device")
    assert device_secret
    device = httpx.post(
        meta["token_endpoint"],
        auth=(device_id, device_secret),
        data={"grant_type": "client_credentials", "local_user": '{"id": "boss"}'},
    ).json()["access_token"]
    # a device naming an administrator as its local user is no administrator
    assert introspect(stack, meta, device)["admin"] is False
    platform = httpx.post(
        meta["token_endpoint"],
        auth=stack.settings.service_client("idp-a", "auth"),
        data={"grant_type": "client_credentials", "scope": "admin"},
    ).json()["access_token"]
    assert introspect(stack, meta, platform)["admin"] is True

    # Demoted: the same token, still active, no longer acts as an administrator.
    with service_admin(stack) as api:
        answer = api.patch(f"/tenants/{tenant}/users/boss", json={"is_admin": False})
        assert answer.status_code == 200, answer.text
    info = introspect(stack, meta, boss)
    assert info["active"] is True and info["admin"] is False


def test_a_third_party_client_cannot_be_given_admin(stack: Stack) -> None:
    tenant = stack.tenant()
    with service_admin(stack) as api:
        for kind in ("confidential", "public", "device"):
            answer = api.post(
                f"/tenants/{tenant}/clients",
                json={"name": "third party", "kind": kind, "scope": "print admin"},
            )
            assert answer.status_code == 400, answer.text
            body = answer.json()
            assert body["field"] == "scope" and "admin" in body["error_description"]
        created = api.post(
            f"/tenants/{tenant}/clients", json={"name": "third party", "scope": "print"}
        )
        assert created.status_code == 201, created.text
        client_id = created.json()["client_id"]
        answer = api.patch(f"/tenants/{tenant}/clients/{client_id}", json={"scope": "admin"})
        assert answer.status_code == 400 and answer.json()["field"] == "scope", answer.text
        assert api.get(f"/tenants/{tenant}/clients/{client_id}").json()["scope"] == "print"
    # the service layer (the CLI's `admin client create`) refuses it too
    with pytest.raises(InvalidRequest) as refused:
        stack.client(tenant, scope="print admin")
    assert refused.value.field == "scope"


def test_a_third_party_client_cannot_get_admin(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "confidential")
    stack.user(setup.tenant, "boss", PASSWORD, admin=True)
    with stack.db.session() as s:
        # a client registered before the scope was refused (the migration strips it too)
        s.execute(
            update(Client)
            .where(Client.issuer == "idp-a", Client.client_id == setup.client_id)
            .values(scope="print admin")
        )
    auth = (setup.client_id, setup.secret or "")
    refused = httpx.post(
        meta["token_endpoint"],
        auth=auth,
        data={"grant_type": "client_credentials", "scope": "admin"},
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert "admin" in refused.json()["error_description"]
    # asking for nothing in particular does not bring `admin` along either
    issued = httpx.post(
        meta["token_endpoint"], auth=auth, data={"grant_type": "client_credentials"}
    )
    assert issued.status_code == 200, issued.text
    assert "admin" not in issued.json()["scope"].split()
    info = introspect(stack, meta, issued.json()["access_token"])
    assert info["admin"] is False and "admin" not in info["scope"].split()
    # nor does an administrator signing in through it
    _, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": setup.client_id,
        "redirect_uri": REDIRECT,
        "scope": "print admin",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with Browser(stack.base_url) as browser:
        done = browser.authorize(
            f"{meta['authorization_endpoint']}?{urlencode(query)}",
            credentials=(setup.tenant, "boss", PASSWORD),
        )
    assert done.response.status_code == 302, done.response.text
    assert query_of(done.location).get("error") == "invalid_scope", done.location


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_strips_admin_from_third_party_clients(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A client registered with `admin` before issue 11 loses it; a service client keeps it,
    and every tenant starts with `held_release=card_or_owner`."""
    from alembic import command
    from alembic.config import Config

    if backend == "postgresql":
        url, drop = new_pg_database()
        request.addfinalizer(drop)
    else:
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    db = Database(url)
    request.addfinalizer(db.dispose)
    cfg = Config()
    cfg.set_main_option("script_location", "printcloud:migrations")
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
        conn.commit()
        conn.execute(
            text(
                "INSERT INTO auth_tenants (pk, issuer, tenant_id, name, created_at, "
                "local_auth_cooperation, users_may_grant_tenant_consent, card_retention_days) "
                "VALUES (1, 'idp-a', 't1', 'T1', :now, false, false, 90)"
            ),
            {"now": utcnow()},
        )
        for pk, kind, scope in ((1, "confidential", "print admin"), (2, "service", "print admin")):
            conn.execute(
                text(
                    "INSERT INTO auth_clients (pk, tenant_pk, issuer, client_id, name, kind, "
                    "redirect_uris, grant_types, scope, disabled, created_at) VALUES "
                    "(:pk, 1, 'idp-a', :cid, 'c', :kind, '[]', '[]', :scope, false, :now)"
                ),
                {"pk": pk, "cid": f"c{pk}", "kind": kind, "scope": scope, "now": utcnow()},
            )
        conn.commit()
        command.upgrade(cfg, "head")
        conn.commit()
        scopes = dict(conn.execute(text("SELECT kind, scope FROM auth_clients")).all())
        assert scopes == {"confidential": "print", "service": "print admin"}
        held = conn.execute(text("SELECT held_release FROM auth_tenants")).scalar()
        assert held == "card_or_owner"
