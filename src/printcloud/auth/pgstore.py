"""The hot path's storage on PostgreSQL, on the event loop (issue 17; docs/adr/0005).

- `GroupCommit`: the token rows (and card logins' times, seed 004) of every request
  that arrives while one batch is being committed form the next batch: one statement,
  one transaction, one round trip. Each request is answered only after the commit
  holding its rows returned (synchronous commit: its rows are durable), so no token is
  handed out before it is stored. A batch that fails fails each of its requests with
  a 503 naming the problem; rows one request could not store (its client deleted
  meanwhile) are told apart from the others', which are then written alone.
- `GroupReads` / `LoopReader`: introspection's token lookups and card logins' binding
  reads, batched the same way (one `= ANY(...)` query per batch). Authlib's synchronous
  grants reach them through `core.greenbridge`: the loop serves other requests meanwhile.

Each batcher has one psycopg `AsyncConnection` of its own (autocommit, statements
prepared at their first execution), so the loop never waits on a thread, a pool
checkout or its ping. A lost connection is replaced and the statement sent once more:
both statements are idempotent (a token's digest is its primary key; `ON CONFLICT DO
NOTHING` finds the row of a commit whose answer was lost).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import psycopg
from sqlalchemy import Engine

from printcloud.core import crypto, greenbridge
from printcloud.core.db import utcnow
from printcloud.core.errors import Unavailable
from printcloud.core.logs import get_logger

from .store import (
    TOKEN_TABLES,
    CardRow,
    HotReader,
    Login,
    TokenInfo,
    card_row,
    latest_logins,
    lookup_sql,
    token_info,
)

log = get_logger("auth.pgstore")

P = TypeVar("P")
R = TypeVar("R")

#: Errors after which the connection is replaced and the statement sent once more
#: (psycopg's OperationalError covers a lost connection, a restart, a deadlock).
_RETRIED = (psycopg.OperationalError, psycopg.InterfaceError)


def conninfo(engine: Engine) -> str:
    """The libpq URL of the engine's database (without SQLAlchemy's driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class LoopConnection:
    """One autocommit connection of the running event loop, opened when first needed."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def execute(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run `sql` (prepared), on a new connection once more if the first one failed."""
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                cursor = await conn.execute(sql, params, prepare=True)
                return await cursor.fetchall() if cursor.description else []
            except _RETRIED:
                self.drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._conn is not None and (self._loop is not loop or self._conn.closed):
            self.drop()
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                prepare_threshold=0,  # prepared at the first execution: they run all day
                connect_timeout=10,
                application_name=f"printcloud {self.name}",
            )
            self._loop = loop
        return self._conn

    def drop(self) -> None:
        """Close the connection without the loop (it may belong to a loop that is gone)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pgconn.finish()


class Batches(Generic[P, R]):
    """Requests' items handled a batch at a time on the loop: what arrives while one
    batch is in the database forms the next. `handle` answers each item of a batch, a
    result or the exception its request raises."""

    def __init__(self, handle: Callable[[list[P]], Awaitable[list[R | Exception]]]) -> None:
        self._handle = handle
        self._pending: list[tuple[P, asyncio.Future[R]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: P) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # another loop (a test's): the old one's batches are gone
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._handle([item for item, _ in batch])
                except Exception as exc:  # handed to each request, never lost
                    log.exception("batch failed", extra={"fields": {"items": len(batch)}})
                    answers = [_unavailable(exc) for _ in batch]
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # its request went away (a closed connection)
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            if self._task is asyncio.current_task():
                self._task = None


def _unavailable(exc: BaseException, what: str = "the database") -> Unavailable:
    error = Unavailable(f"{what} is unavailable; try again shortly")
    error.__cause__ = exc
    return error


# -- group commit --------------------------------------------------------------

_ACCESS = (
    "token_digest",
    "tenant_pk",
    "client_pk",
    "user_pk",
    "local_user",
    "scope",
    "grant_type",
    "issued_at",
    "expires_at",
    "revoked_at",
    "family_id",
)
_REFRESH = (
    "token_digest",
    "family_id",
    "tenant_pk",
    "client_pk",
    "user_pk",
    "scope",
    "issued_at",
    "expires_at",
    "rotated_at",
    "revoked_at",
)


def _insert(table: str, columns: tuple[str, ...], param: str) -> str:
    # Built from the fixed names above, never from input. The rows travel as one JSON
    # array: psycopg dumps it (the C encoder) at a third of the cost of a typed array
    # per column, and PostgreSQL types each field by the table's own column.
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table}, %({param})s::json) "
        "ON CONFLICT (token_digest) DO NOTHING"
    )


#: A whole batch in one statement (its own transaction): the card logins' times, then
#: the rows. Bindings come sorted by primary key, a fixed lock order between replicas.
_WRITE = " ".join(
    (
        "WITH logins AS (UPDATE auth_card_bindings AS b SET last_login_at = v.at",
        "FROM json_to_recordset(%(logins)s::json) AS v(pk integer, at timestamptz)",
        "WHERE b.pk = v.pk),",
        f"refresh AS ({_insert('auth_refresh_tokens', _REFRESH, 'refresh')})",
        _insert("auth_access_tokens", _ACCESS, "access"),
    )
)

#: One request's token rows and card logins.
Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[Login]]


def _write_params(items: list[Rows]) -> dict[str, str]:
    access = [row for rows, _, _ in items for row in rows]
    refresh = [row for _, rows, _ in items for row in rows]
    logins = latest_logins([login for _, _, logins in items for login in logins])
    # The rows as `IssuerServer.save_token` made them: the statement picks its columns.
    return {"access": _json(access), "refresh": _json(refresh), "logins": _json(logins)}


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a token row")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a token row")


class GroupCommit:
    """Group commit of token rows on the event loop (the module's docstring)."""

    def __init__(self, dsn: str) -> None:
        self.connection = LoopConnection(dsn, "token writer")
        self._batches: Batches[Rows, None] = Batches(self._write)

    def submit(
        self,
        access_rows: list[dict[str, Any]],
        refresh_rows: list[dict[str, Any]],
        logins: list[Login] | None = None,
    ) -> asyncio.Future[None]:
        """A future done when these rows are committed (or failed with `Unavailable`)."""
        return self._batches.submit((access_rows, refresh_rows, logins or []))

    def close(self) -> None:
        self.connection.drop()

    async def _write(self, items: list[Rows]) -> list[Exception | None]:
        try:
            await self.connection.execute(_WRITE, _write_params(items))
        except psycopg.Error as exc:
            if len(items) > 1 and not isinstance(exc, _RETRIED):
                # Rows of one request refused (its client or user deleted meanwhile):
                # each request's rows alone, so that only that request fails.
                return [await self._write_alone(item) for item in items]
            log.exception("token batch failed", extra={"fields": {"requests": len(items)}})
            return [_unavailable(exc, "the token store") for _ in items]
        return [None] * len(items)

    async def _write_alone(self, item: Rows) -> Exception | None:
        try:
            await self.connection.execute(_WRITE, _write_params([item]))
        except psycopg.Error as exc:
            log.warning(
                "token rows refused",
                extra={"fields": {"error": type(exc).__name__, "sqlstate": exc.sqlstate}},
            )
            return _unavailable(exc, "the token store")
        return None


# -- group reads ---------------------------------------------------------------

#: Every kind of token with these digests, tagged with its kind and digest.
_TOKENS = " UNION ALL ".join(
    lookup_sql(
        table,
        extra,
        "t.token_digest = ANY(%(digests)s::varchar[])",
        lead=f"'{kind}', t.token_digest, ",
    )
    for kind, table, extra in TOKEN_TABLES
)
#: The card bindings of these (tenant, card digest) pairs: seed 004's determination unit.
_CARDS = (
    "SELECT b.tenant_pk, b.card_digest, b.pk, b.last_login_at, u.pk, u.username, "
    "u.display_name, u.disabled "
    "FROM unnest(%(tenants)s::integer[], %(digests)s::varchar[]) AS v(tenant_pk, digest) "
    "JOIN auth_card_bindings b ON b.tenant_pk = v.tenant_pk AND b.card_digest = v.digest "
    "JOIN auth_users u ON u.pk = b.user_pk"
)

#: A token's rows by kind (`access_token`, `refresh_token`): at most one of each.
Found = dict[str, tuple[Any, ...]]


class GroupReads:
    """Introspection's and card logins' reads, batched on the event loop."""

    def __init__(self, dsn: str) -> None:
        self.token_connection = LoopConnection(dsn, "token reads")
        self.card_connection = LoopConnection(dsn, "card reads")
        self._tokens: Batches[str, Found] = Batches(self._read_tokens)
        self._cards: Batches[tuple[int, str], CardRow | None] = Batches(self._read_cards)

    async def lookup(self, *, issuer: str, token: str, hint: str | None) -> TokenInfo | None:
        """What `store.HotReader.lookup` answers, from the batch this request joins."""
        if not token or len(token) > 512:
            return None
        digest = crypto.token_digest(token)
        found = await self._tokens.submit(digest)
        order = (
            ("refresh_token", "access_token")
            if hint == "refresh_token"
            else ("access_token", "refresh_token")
        )
        for kind in order:
            if kind in found:
                return token_info(kind, digest, found[kind], issuer=issuer, now=utcnow())
        return None

    async def card_binding(self, *, tenant_pk: int, digest: str) -> CardRow | None:
        return await self._cards.submit((tenant_pk, digest))

    def close(self) -> None:
        self.token_connection.drop()
        self.card_connection.drop()

    async def _read_tokens(self, digests: list[str]) -> list[Found | Exception]:
        try:
            rows = await self.token_connection.execute(
                _TOKENS, {"digests": list(dict.fromkeys(digests))}
            )
        except psycopg.Error as exc:
            log.warning("token lookups failed", extra={"fields": {"error": type(exc).__name__}})
            return [_unavailable(exc) for _ in digests]
        found: dict[str, Found] = {}
        for kind, digest, *columns in rows:
            found.setdefault(digest, {})[kind] = tuple(columns)
        return [found.get(digest, {}) for digest in digests]

    async def _read_cards(self, keys: list[tuple[int, str]]) -> list[CardRow | Exception | None]:
        unique = list(dict.fromkeys(keys))
        try:
            rows = await self.card_connection.execute(
                _CARDS,
                {"tenants": [pk for pk, _ in unique], "digests": [digest for _, digest in unique]},
            )
        except psycopg.Error as exc:
            log.warning("card reads failed", extra={"fields": {"error": type(exc).__name__}})
            return [_unavailable(exc) for _ in keys]
        found = {(int(row[0]), str(row[1])): card_row(row[2:]) for row in rows}
        return [found.get(key) for key in keys]


class LoopReader(HotReader):
    """`HotReader` whose reads, from code run by `greenbridge.run`, join the loop's
    batches; called from anywhere else (a worker thread), it reads as `HotReader` does."""

    def __init__(self, engine: Engine, reads: GroupReads) -> None:
        super().__init__(engine)
        self.reads = reads

    def lookup(self, *, issuer: str, token: str, hint: str | None = None) -> TokenInfo | None:
        if greenbridge.bridged():
            return greenbridge.wait(self.reads.lookup(issuer=issuer, token=token, hint=hint))
        return super().lookup(issuer=issuer, token=token, hint=hint)

    def card_binding(self, *, tenant_pk: int, digest: str) -> CardRow | None:
        if greenbridge.bridged():
            return greenbridge.wait(self.reads.card_binding(tenant_pk=tenant_pk, digest=digest))
        return super().card_binding(tenant_pk=tenant_pk, digest=digest)
