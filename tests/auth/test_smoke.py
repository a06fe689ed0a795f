"""Client credentials with a local user, over real HTTP, on every database."""

from __future__ import annotations

import json

import httpx

from tests.conftest import Stack


def test_local_user_and_cooperation_mode(stack: Stack) -> None:
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, kind="device")
    assert secret
    meta = stack.metadata()
    local = {"id": "jdoe", "name": "J. Doe"}
    token = httpx.post(
        meta["token_endpoint"],
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "local_user": json.dumps(local)},
    ).json()
    access = token["access_token"]
    info = httpx.post(
        meta["introspection_endpoint"], auth=(client_id, secret), data={"token": access}
    ).json()
    assert info["active"] is True
    assert info["tenant_id"] == tenant
    assert info["local_user"] == local
    me = httpx.get(
        f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {access}"}
    ).json()
    assert me["acting_user"] == client_id and me["acting_kind"] == "client"

    stack.set_tenant(tenant, local_auth_cooperation=True)
    access2 = httpx.post(
        meta["token_endpoint"],
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "local_user": json.dumps(local)},
    ).json()["access_token"]
    me2 = httpx.get(
        f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {access2}"}
    ).json()
    assert me2["acting_user"] == "jdoe" and me2["acting_kind"] == "local_user"
