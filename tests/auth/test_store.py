"""The hot path's storage: group commit and group reads (on SQLite and PostgreSQL), and a
database that is down or refuses rows is a 503 naming the token store, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from printcloud.auth import service
from printcloud.auth.pgstore import GroupCommit, GroupReads, conninfo
from printcloud.auth.store import CARD_GRANT, HotReader
from printcloud.core import crypto
from printcloud.core.db import Database, make_engine, migrate, utcnow
from printcloud.core.errors import Unavailable
from tests.conftest import Stack, free_port
from tests.helpers.oauth import card_login

CONCURRENT = 48


def test_hot_reader_on_a_database_that_does_not_answer_is_unavailable() -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(Unavailable, match="database is unavailable"):
        HotReader(engine).lookup(issuer="idp-a", token="x" * 43)
    engine.dispose()


def test_hot_reader_reads_what_was_committed(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    migrate(db, "printcloud:migrations")
    reader = HotReader(db.engine)
    assert reader.lookup(issuer="idp-a", token="unknown-token") is None
    assert reader.lookup(issuer="idp-a", token="") is None
    db.dispose()


# -- over HTTP: concurrent requests share batches; each answer is durable -------------


async def _all_at_once(
    url: str, bodies: list[dict[str, str]], auth: tuple[str, str]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return list(await asyncio.gather(*(client.post(url, data=b, auth=auth) for b in bodies)))


def test_concurrent_tokens_and_card_logins_are_all_stored_and_introspectable(
    stack: Stack,
) -> None:
    tenant = stack.tenant(local_auth_cooperation=True)
    client_id, secret = stack.client(tenant)
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    assert secret and device_secret
    stack.user(tenant, "carol", "carol-password-1")
    cards = ["04:C1:00:01", "04:C1:00:02"]
    for card in cards:  # registered once (the full path), then logged in on the hot path
        registered = card_login(
            stack,
            (device_id, device_secret),
            card,
            username="carol",
            password="carol-password-1",
        )
        assert registered.status_code == 200, registered.text
    token_url = f"{stack.issuer_url()}/token"
    tokens = asyncio.run(
        _all_at_once(
            token_url,
            [{"grant_type": "client_credentials", "scope": "print"}] * CONCURRENT,
            (client_id, secret),
        )
    )
    logins = asyncio.run(
        _all_at_once(
            token_url,
            [
                {"grant_type": CARD_GRANT, "card_id": cards[n % 2], "scope": "print"}
                for n in range(CONCURRENT)
            ],
            (device_id, device_secret),
        )
    )
    assert [a.status_code for a in tokens + logins] == [200] * (2 * CONCURRENT), [
        a.text for a in tokens + logins if a.status_code != 200
    ]
    issued = [a.json()["access_token"] for a in tokens + logins]
    assert len(set(issued)) == len(issued)
    # Introspected at once too (group reads), each by its own tenant's client.
    answers = asyncio.run(
        _all_at_once(
            f"{stack.issuer_url()}/introspect",
            [{"token": token} for token in issued],
            (client_id, secret),
        )
    )
    bodies = [a.json() for a in answers]
    assert all(b["active"] is True and b["tenant_id"] == tenant for b in bodies), bodies
    assert [b.get("local_user", {}).get("id") for b in bodies[CONCURRENT:]] == [
        "carol"
    ] * CONCURRENT
    assert all(b.get("amr") == ["card"] for b in bodies[CONCURRENT:])
    # Revocation stays immediate: the next introspection of a revoked token says inactive.
    revoked = httpx.post(
        f"{stack.issuer_url()}/revoke", data={"token": issued[0]}, auth=(client_id, secret)
    )
    assert revoked.status_code == 200, revoked.text
    again = httpx.post(
        f"{stack.issuer_url()}/introspect", data={"token": issued[0]}, auth=(client_id, secret)
    )
    assert again.json() == {"active": False}
    # Another tenant's client learns nothing of these tokens.
    other = stack.tenant()
    other_id, other_secret = stack.client(other)
    assert other_secret
    foreign = httpx.post(
        f"{stack.issuer_url()}/introspect", data={"token": issued[1]}, auth=(other_id, other_secret)
    )
    assert foreign.json() == {"active": False}


# -- PostgreSQL's group commit and group reads, as a service ---------------------------


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[tuple[Database, str, int, int]]:
    """The test database, migrated, with a tenant and a client: (db, dsn, tenant, client)."""
    db = Database(postgres_url)
    migrate(db, "printcloud:migrations")
    with db.session() as s:
        tenant = service.create_tenant(s, issuer="idp-a", tenant_id=f"gc{free_port()}", name="GC")
        client, _ = service.create_client(
            s, tenant=tenant, name="gc", kind="confidential", scope="print"
        )
        ids = (tenant.pk, client.pk)
    yield db, conninfo(db.engine), *ids
    db.dispose()


def _row(tenant_pk: int, client_pk: int) -> tuple[str, dict[str, Any]]:
    token, now = crypto.new_token(), utcnow()
    return token, {
        "token_digest": crypto.token_digest(token),
        "tenant_pk": tenant_pk,
        "client_pk": client_pk,
        "user_pk": None,
        "local_user": {"id": "u1", "name": "U 1"},
        "scope": "print",
        "grant_type": "client_credentials",
        "issued_at": now,
        "expires_at": now + timedelta(minutes=5),
        "revoked_at": None,
        "family_id": None,
    }


async def _submit_all(writer: GroupCommit, rows: list[dict[str, Any]]) -> list[Any]:
    # Submitted in one pass of the loop: they share one batch.
    futures = [writer.submit([row], []) for row in rows]
    return list(await asyncio.gather(*futures, return_exceptions=True))


def test_group_commit_answers_after_the_commit_and_reads_find_every_row(
    pg: tuple[Database, str, int, int],
) -> None:
    db, dsn, tenant_pk, client_pk = pg
    writer, reads = GroupCommit(dsn), GroupReads(dsn)
    made = [_row(tenant_pk, client_pk) for _ in range(CONCURRENT)]

    async def scenario() -> list[Any]:
        assert await _submit_all(writer, [row for _, row in made]) == [None] * CONCURRENT
        # Durable as soon as answered: another connection sees every row.
        with db.engine.connect() as conn:
            digests = [row["token_digest"] for _, row in made]
            stored = conn.execute(
                text("SELECT count(*) FROM auth_access_tokens WHERE token_digest = ANY(:d)"),
                {"d": digests},
            ).scalar_one()
        assert stored == CONCURRENT
        return list(
            await asyncio.gather(
                *(reads.lookup(issuer="idp-a", token=token, hint=None) for token, _ in made),
                reads.lookup(issuer="idp-a", token="never-issued", hint=None),
                reads.lookup(issuer="idp-b", token=made[0][0], hint=None),
            )
        )

    found = asyncio.run(scenario())
    writer.close()
    reads.close()
    assert all(info is not None and info.active for info in found[:CONCURRENT])
    assert {info.local_user["id"] for info in found[:CONCURRENT]} == {"u1"}
    assert found[CONCURRENT:] == [None, None]  # unknown; another issuer's


def test_a_lost_connection_is_replaced_and_the_batch_sent_again(
    pg: tuple[Database, str, int, int],
) -> None:
    db, dsn, tenant_pk, client_pk = pg
    writer = GroupCommit(dsn)
    first, second = _row(tenant_pk, client_pk), _row(tenant_pk, client_pk)

    async def scenario() -> list[Any]:
        assert await _submit_all(writer, [first[1]]) == [None]
        with db.engine.connect() as conn:  # the database drops the writer's connection
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'printcloud token writer' AND datname = "
                    "current_database()"
                )
            ).all()
        assert killed and all(ok for (ok,) in killed)
        return await _submit_all(writer, [second[1]])

    assert asyncio.run(scenario()) == [None]
    writer.close()
    with db.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM auth_access_tokens WHERE token_digest = :d"),
                {"d": second[1]["token_digest"]},
            ).scalar_one()
            == 1
        )


def test_rows_one_request_could_not_store_fail_that_request_only(
    pg: tuple[Database, str, int, int],
) -> None:
    _db, dsn, tenant_pk, client_pk = pg
    writer, reads = GroupCommit(dsn), GroupReads(dsn)
    good = [_row(tenant_pk, client_pk) for _ in range(3)]
    orphan = _row(tenant_pk, client_pk + 10_000)  # its client is gone: a foreign key refuses it

    async def scenario() -> tuple[list[Any], list[Any]]:
        answers = await _submit_all(writer, [good[0][1], orphan[1], good[1][1], good[2][1]])
        found = await asyncio.gather(
            *(reads.lookup(issuer="idp-a", token=t, hint=None) for t, _ in [*good, orphan])
        )
        return answers, list(found)

    answers, found = asyncio.run(scenario())
    writer.close()
    reads.close()
    assert answers[0] is None and answers[2:] == [None, None]
    assert isinstance(answers[1], Unavailable)
    assert answers[1].status_code == 503
    assert "token store is unavailable" in answers[1].description
    assert [info is not None for info in found] == [True, True, True, False]


def test_a_database_that_does_not_answer_fails_every_waiter_with_a_503() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    writer, reads = GroupCommit(dsn), GroupReads(dsn)
    rows = [_row(1, 1)[1] for _ in range(5)]

    async def scenario() -> tuple[list[Any], list[Any]]:
        written = await _submit_all(writer, rows)
        read = await asyncio.gather(
            reads.lookup(issuer="idp-a", token="x" * 43, hint=None),
            reads.card_binding(tenant_pk=1, digest="d" * 64),
            return_exceptions=True,
        )
        return written, list(read)

    written, read = asyncio.run(scenario())
    assert all(isinstance(e, Unavailable) and e.status_code == 503 for e in written + read)
    assert all("token store is unavailable" in e.description for e in written)
    assert all("database is unavailable" in e.description for e in read)
