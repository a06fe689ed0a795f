"""Smaller points of the RFCs: RFC 8628 §3.5's growing interval, RFC 8252 redirect URIs."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from printcloud.auth import service
from printcloud.auth.models import DeviceGrant
from printcloud.core.errors import InvalidRequest
from tests.conftest import Stack

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def test_every_slow_down_adds_five_seconds(stack: Stack) -> None:
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, kind="device", grant_types=["device_code"])
    assert secret
    meta = stack.metadata()
    started = httpx.post(
        meta["device_authorization_endpoint"], auth=(client_id, secret), data={"scope": "print"}
    )
    assert started.status_code == 200, started.text
    device_code, user_code = started.json()["device_code"], started.json()["user_code"]
    poll = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    answers = [
        httpx.post(meta["token_endpoint"], auth=(client_id, secret), data=poll).json()["error"]
        for _ in range(3)
    ]
    assert answers == ["authorization_pending", "slow_down", "slow_down"]
    with stack.db.session() as s:
        grant = s.scalar(select(DeviceGrant).where(DeviceGrant.user_code == user_code))
        assert grant is not None and grant.poll_interval == stack.settings.device_poll_interval + 10


@pytest.mark.parametrize(
    "uri",
    [
        "com.example.printapp:/oauth2redirect",
        "jp.co.example.mfp:/cb/1",
        "https://app.example/cb",
        "http://127.0.0.1:8765/cb",
    ],
)
def test_accepted_redirect_uris(stack: Stack, uri: str) -> None:
    tenant = stack.tenant()
    client_id, _ = stack.client(tenant, kind="public", redirect_uris=[uri])
    assert client_id


@pytest.mark.parametrize(
    "uri",
    [
        "myapp:/cb",
        "com.example.app://",
        "com.example.app:/",
        "javascript:alert(1)",
        "https://a.example/cb#x",
        "/relative",
        "data:text/html,x",
    ],
)
def test_refused_redirect_uris(stack: Stack, uri: str) -> None:
    tenant = stack.tenant()
    with stack.db.session() as s, pytest.raises(InvalidRequest, match="redirect URI") as refused:
        service.create_client(
            s,
            tenant=service.get_tenant(s, issuer="idp-a", tenant_id=tenant),
            name="app",
            kind="public",
            redirect_uris=[uri],
        )
    assert refused.value.field == "redirect_uris"
