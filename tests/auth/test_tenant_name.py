"""The tenant's display name across services (issue 16): tokens carry the tenant ID; the
issuer adds `tenant_name` (`auth_tenants.name`) to introspection answers and to JWT access
tokens, the guard carries it on the Principal, `/api/me` answers it, and docgen reads it
for the invoice's company when a job names none."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from printcloud.auth import service
from printcloud.core.console import Viewer
from printcloud.core.guard import Guard, Principal
from printcloud.docgen import tokens
from printcloud.docgen.runtime import build_runtime
from tests.conftest import Stack
from tests.helpers.oauth import introspect, post_token


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _principal(stack: Stack, token: str) -> Principal:
    async def check() -> Principal:
        guard = Guard.of_issuer(stack.settings, "idp-a", service="printing")
        try:
            return await guard.verify(token)
        finally:
            await guard.aclose()

    return asyncio.run(check())


def _renamed(stack: Stack, tenant: str, name: str) -> None:
    with stack.db.session() as s:
        service.get_tenant(s, issuer="idp-a", tenant_id=tenant).name = name


def test_introspection_jwt_guard_and_me_carry_the_tenant_name(stack: Stack) -> None:
    tenant = stack.tenant()
    _renamed(stack, tenant, "Acme Printing")
    stack.user(tenant, "alice")
    meta = stack.metadata()

    # an opaque user token: introspection answers the name beside the ID
    opaque = stack.user_token(tenant, "alice", "correct horse", "print")
    answer = introspect(stack, meta, opaque)
    assert answer["tenant_id"] == tenant and answer["tenant_name"] == "Acme Printing"
    principal = _principal(stack, opaque)
    assert principal.tenant_id == tenant and principal.tenant_name == "Acme Printing"
    viewer = Viewer.of(principal, "printing")
    assert (viewer.tenant, viewer.tenant_id) == ("Acme Printing", tenant)

    # a JWT access token (RFC 9068) carries it as a claim, read without introspection
    client = stack.client(tenant, scope="print", access_token_format="jwt")
    assert client[1]
    issued = post_token(
        meta, {"grant_type": "client_credentials", "scope": "print"}, auth=(client[0], client[1])
    )
    assert issued.status_code == 200, issued.text
    jwt = str(issued.json()["access_token"])
    assert _claims(jwt)["tenant_name"] == "Acme Printing"
    assert introspect(stack, meta, jwt)["tenant_name"] == "Acme Printing"
    assert _principal(stack, jwt).tenant_name == "Acme Printing"

    # a renamed tenant: introspection reads the name now
    _renamed(stack, tenant, "Acme Printing & Co")
    fresh = stack.user_token(tenant, "alice", "correct horse", "print")
    assert introspect(stack, meta, fresh)["tenant_name"] == "Acme Printing & Co"
    me = httpx.get(
        f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {fresh}"}, timeout=60
    )
    assert me.status_code == 200 and me.json()["tenant_name"] == "Acme Printing & Co", me.text


def test_docgen_names_the_company_after_the_tenant(stack: Stack) -> None:
    """The invoice's company when a job gives none: idp-a's name of the tenant."""
    tenant = stack.tenant()
    _renamed(stack, tenant, "Globex Printing")
    stack.user(tenant, "bob")
    token = stack.user_token(tenant, "bob", "correct horse", "print")
    rt = build_runtime(stack.settings, db=stack.db)
    try:
        assert tokens.tenant_name(rt, tenant_id=tenant, token=token) == "Globex Printing"
        # another tenant's token does not name this one; no token stored: the ID
        other = stack.tenant()
        assert tokens.tenant_name(rt, tenant_id=other, token=token) == other
        assert tokens.tenant_name(rt, tenant_id=other, token=None) == other
    finally:
        rt.http.close()
