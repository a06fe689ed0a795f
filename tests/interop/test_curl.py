"""curl against printcloud's OAuth endpoints: client credentials, introspection,
revocation and metadata, exactly as an operator would type them."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.conftest import Stack, require_command

pytestmark = pytest.mark.peer("curl")


def curl(*args: str) -> tuple[int, Any]:
    """Run curl; answers the HTTP status and the JSON body."""
    done = subprocess.run(
        [require_command("curl"), "-sS", "--max-time", "60", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


def test_metadata_with_curl(stack: Stack) -> None:
    status, meta = curl(f"{stack.issuer_url()}/.well-known/oauth-authorization-server")
    assert status == 200
    assert meta["issuer"] == stack.issuer_url()
    assert meta["token_endpoint"] == f"{stack.issuer_url()}/token"


def test_client_credentials_introspect_and_revoke_with_curl(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, scope="print profile")
    basic = f"{client_id}:{secret}"

    status, token = curl(
        "-u",
        basic,
        "-d",
        "grant_type=client_credentials",
        "-d",
        "scope=print",
        meta["token_endpoint"],
    )
    assert status == 200, token
    assert token["token_type"] == "Bearer" and token["scope"] == "print" and token["expires_in"] > 0

    status, info = curl(
        "-u", basic, "-d", f"token={token['access_token']}", meta["introspection_endpoint"]
    )
    assert status == 200
    assert info["active"] is True
    assert (info["tenant_id"], info["client_id"], info["scope"]) == (tenant, client_id, "print")

    # client_secret_post works as well as HTTP Basic.
    status, posted = curl(
        "--data-urlencode",
        "grant_type=client_credentials",
        "--data-urlencode",
        f"client_id={client_id}",
        "--data-urlencode",
        f"client_secret={secret}",
        meta["token_endpoint"],
    )
    assert status == 200 and posted["access_token"] != token["access_token"]

    status, _ = curl(
        "-u", basic, "-d", f"token={token['access_token']}", meta["revocation_endpoint"]
    )
    assert status == 200
    status, info = curl(
        "-u", basic, "-d", f"token={token['access_token']}", meta["introspection_endpoint"]
    )
    assert status == 200 and info == {"active": False}


def test_curl_errors_are_oauth_json(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant)

    status, body = curl(
        "-u", f"{client_id}:wrong", "-d", "grant_type=client_credentials", meta["token_endpoint"]
    )
    assert status == 401 and body["error"] == "invalid_client"

    status, body = curl(
        "-u", f"{client_id}:{secret}", "-d", "grant_type=password", meta["token_endpoint"]
    )
    assert status == 400 and body["error"] == "unsupported_grant_type"

    # seed 001: only device clients may say which local user they act for.
    status, body = curl(
        "-u",
        f"{client_id}:{secret}",
        "-d",
        "grant_type=client_credentials",
        "--data-urlencode",
        'local_user={"id": "jdoe"}',
        meta["token_endpoint"],
    )
    assert status == 400 and body["error"] == "invalid_request"


def test_device_client_local_user_with_curl(stack: Stack) -> None:
    """seed 001: the device's local user travels with the client-credentials token."""
    meta = stack.metadata()
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, kind="device")
    local = {"id": "jdoe", "name": "J. Doe", "dept": "R&D"}
    status, token = curl(
        "-u",
        f"{client_id}:{secret}",
        "-d",
        "grant_type=client_credentials",
        "--data-urlencode",
        f"local_user={json.dumps(local)}",
        meta["token_endpoint"],
    )
    assert status == 200, token
    status, info = curl(
        "-u",
        f"{client_id}:{secret}",
        "-d",
        f"token={token['access_token']}",
        meta["introspection_endpoint"],
    )
    assert status == 200 and info["active"] is True
    assert info["local_user"] == local and info["tenant_id"] == tenant
