"""docgen served for real over HTTP beside the auth stack.

`sqlite_stack` runs idp-a and idp-b; docgen's app is built with the same settings
(so `svc-docgen`'s derived secrets match), mounted at `/docgen` on a server of its
own (the stack in tests/conftest.py serves auth only), on a database of its own
made from the models. `svc-docgen`'s redirect URIs are registered here in the auth
database, as the bootstrap will do once docgen is part of the stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from printcloud.core.db import Base, Database
from printcloud.docgen.app import create_app
from printcloud.docgen.models import BatchRequest, BatchSettings
from printcloud.docgen.runtime import DocgenRuntime
from printcloud.webhooks.models import DeliveryRow, MessageRow, SubscriptionRow
from tests.conftest import Stack, _Server, free_port
from tests.helpers.docgen import Docgen


def register_redirect_uris(stack: Stack, base_url: str) -> dict[str, str]:
    """svc-docgen's redirect URI at each issuer (what `auth.service.WEB_SIGN_IN` will hold)."""
    from printcloud.auth.models import Client

    wanted = {"idp-a": f"{base_url}/auth/callback", "idp-b": f"{base_url}/auth/crm-callback"}
    with stack.db.session() as s:
        for issuer, uri in wanted.items():
            client = s.scalar(
                select(Client).where(Client.issuer == issuer, Client.client_id == "svc-docgen")
            )
            assert client is not None
            client.redirect_uris = [*client.redirect_uris, uri]
            client.grant_types = sorted({*client.grant_types, "authorization_code"})
    # The issuers cache clients for a few seconds: wait until they accept the URI.
    for issuer, uri in wanted.items():
        deadline = time.monotonic() + 15
        while True:
            answer = httpx.get(
                f"{stack.issuer_url(issuer)}/authorize",
                params={
                    "response_type": "code",
                    "client_id": "svc-docgen",
                    "redirect_uri": uri,
                    "state": "probe",
                    "scope": "docgen",
                },
            )
            if answer.status_code == 303:  # to the login page: the request is valid
                break
            assert time.monotonic() < deadline, answer.text[:500]
            time.sleep(0.2)
    return wanted


@pytest.fixture(scope="session")
def docgen(sqlite_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docgen]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('docgen') / 'docgen.sqlite3'}")
    Base.metadata.create_all(db.engine, tables=[BatchSettings.__table__, BatchRequest.__table__])
    Base.metadata.create_all(  # the webhooks' outbox, where request events are queued
        db.engine,
        tables=[SubscriptionRow.__table__, MessageRow.__table__, DeliveryRow.__table__],
    )
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    app = create_app(sqlite_stack.settings, db=db, public_url=public_url)
    root = FastAPI()
    root.mount("/docgen", app)
    server = _Server(
        uvicorn.Config(
            root, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "docgen did not start"
        time.sleep(0.02)
    rt: DocgenRuntime = app.state.docgen
    live = Docgen(stack=sqlite_stack, rt=rt, db=db, base_url=rt.base_url)
    register_redirect_uris(sqlite_stack, live.base_url)
    yield live
    server.should_exit = True
    thread.join(timeout=10)
    rt.http.close()
    db.dispose()
