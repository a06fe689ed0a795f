"""Hot-path storage of the authorization server.

- `ClientCache`: immutable client snapshots with a short TTL, so a token
  request does not query the clients table. A change made in this process
  invalidates at once; another replica sees it within `client_cache_ttl`.
- `LoopTokenWriter`: group commit on SQLite. Token rows from concurrent
  requests are inserted in one transaction; each request answers only after
  the transaction holding its row has committed, so an issued token is always
  persisted (docs/adr/0005-token-hot-path.md). PostgreSQL's is `pgstore.GroupCommit`.
- `lookup_token`, `HotReader`: one indexed query returning what introspection needs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.errors import Unavailable
from printcloud.core.logs import get_logger

from .models import SYSTEM_TENANT, Client, Tenant

log = get_logger("auth.store")


#: A client's access-token formats: opaque (introspected, the default) or RFC 9068 JWT.
TOKEN_FORMATS = ("opaque", "jwt")
JWT_FORMAT = TOKEN_FORMATS[1]
#: The JWS algorithm of a client's JWTs unless it chooses the other (core.jws.ALGORITHMS).
DEFAULT_JWT_ALG = "EdDSA"


@dataclass(frozen=True)
class TenantRef:
    pk: int
    tenant_id: str
    name: str
    issuer: str = ""
    #: Seed 004's period, for the card login's hot path.
    card_retention_days: int = 90
    #: Carried in JWT access tokens (RFC 9068), which resource servers do not introspect.
    local_auth_cooperation: bool = False
    held_release: str = "card_or_owner"

    @property
    def is_system(self) -> bool:
        return self.tenant_id == SYSTEM_TENANT


@dataclass(frozen=True)
class ClientSnapshot:
    pk: int
    tenant: TenantRef
    issuer: str
    client_id: str
    name: str
    kind: str
    secret_digest: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    disabled: bool
    #: `opaque` or `jwt` (RFC 9068), and the JWS algorithm of its JWTs.
    access_token_format: str = TOKEN_FORMATS[0]
    access_token_alg: str = DEFAULT_JWT_ALG

    @property
    def tenant_pk(self) -> int:
        return self.tenant.pk

    @classmethod
    def of(cls, client: Client, tenant: Tenant) -> ClientSnapshot:
        return cls(
            pk=client.pk,
            tenant=TenantRef(
                tenant.pk,
                tenant.tenant_id,
                tenant.name,
                tenant.issuer,
                tenant.card_retention_days,
                bool(tenant.local_auth_cooperation),
                tenant.held_release or "card_or_owner",
            ),
            issuer=client.issuer,
            client_id=client.client_id,
            name=client.name,
            kind=client.kind,
            secret_digest=client.secret_digest,
            redirect_uris=tuple(client.redirect_uris or ()),
            grant_types=tuple(client.grant_types or ()),
            scope=client.scope,
            disabled=client.disabled,
            access_token_format=client.access_token_format or TOKEN_FORMATS[0],
            access_token_alg=client.access_token_alg or DEFAULT_JWT_ALG,
        )


class ClientCache:
    def __init__(self, engine: Engine, *, ttl: float, max_entries: int = 50_000) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[tuple[str, str], tuple[ClientSnapshot | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, issuer: str, client_id: str) -> ClientSnapshot | None:
        key = (issuer, client_id)
        hit = self._data.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        snapshot = self._load(issuer, client_id)
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.clear()
            # Unknown ids are remembered briefly too, so guessing them cannot hammer the database.
            self._data[key] = (snapshot, now + (self.ttl if snapshot else min(self.ttl, 1.0)))
        return snapshot

    def _load(self, issuer: str, client_id: str) -> ClientSnapshot | None:
        with Session(self.engine) as session:
            row = session.execute(
                select(Client, Tenant)
                .join(Tenant, Tenant.pk == Client.tenant_pk)
                .where(Client.issuer == issuer, Client.client_id == client_id)
            ).first()
            if row is None:
                return None
            client, tenant = row
            return ClientSnapshot.of(client, tenant)

    def invalidate(self, issuer: str | None = None, client_id: str | None = None) -> None:
        with self._lock:
            if issuer is None or client_id is None:
                self._data.clear()
            else:
                self._data.pop((issuer, client_id), None)


class LoopTokenWriter:
    """Group commit on the event loop, for SQLite: every token issued in one pass of
    the loop shares one transaction, flushed by a `call_soon` callback. A local
    commit is short, and no thread has to take the GIL from the loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: list[
            tuple[list[dict[str, Any]], list[dict[str, Any]], list[Login], asyncio.Future[None]]
        ] = []
        self._scheduled = False
        self._conn: Any = None

    def submit(
        self,
        access_rows: list[dict[str, Any]],
        refresh_rows: list[dict[str, Any]],
        logins: list[Login] | None = None,
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((access_rows, refresh_rows, logins or [], future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def close(self) -> None:
        self._drop()

    def _flush(self) -> None:
        batch, self._pending, self._scheduled = self._pending, [], False
        access = [_sqlite_access(r) for a, _, _, _ in batch for r in a]
        refresh = [_sqlite_refresh(r) for _, rr, _, _ in batch for r in rr]
        bindings = latest_logins([x for _, _, lg, _ in batch for x in lg])
        try:
            self._insert(access, refresh, bindings)
        except Exception as exc:  # handed to every waiting request
            log.exception(
                "token batch insert failed", extra={"fields": {"rows": len(access) + len(refresh)}}
            )
            self._drop()
            error = Unavailable("the token store is unavailable; try again shortly")
            error.__cause__ = exc
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            return
        for *_, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def _insert(
        self,
        access: list[tuple[Any, ...]],
        refresh: list[tuple[Any, ...]],
        bindings: list[dict[str, Any]],
    ) -> None:
        # The DBAPI directly, on a connection of its own: a SQLAlchemy transaction cost
        # 2.5 times the insert and commit themselves (244 against 97 us for one row).
        if self._conn is None:
            self._conn = self.engine.raw_connection()
            driver = self._conn.driver_connection
            assert driver is not None
            driver.isolation_level = None  # explicit BEGIN/COMMIT below
        cursor = self._conn.driver_connection.cursor()
        try:
            cursor.execute("BEGIN")
            try:
                if bindings:
                    cursor.executemany(
                        _SQLITE_UPDATE_BINDING,
                        [(_sqlite_value(b["at"]), b["pk"]) for b in bindings],
                    )
                if access:
                    cursor.executemany(_INSERT_ACCESS, access)
                if refresh:
                    cursor.executemany(_INSERT_REFRESH, refresh)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        finally:
            cursor.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
            self._conn = None


#: A card login's latest-login time (seed 004): (binding pk, user pk, time). The hot
#: path records it on the binding (the seed's latest log-in time storing unit); the
#: user's own `last_login_at` follows password logins and registrations.
Login = tuple[int, int, datetime]

_SQLITE_UPDATE_BINDING = "UPDATE auth_card_bindings SET last_login_at = ? WHERE pk = ?"


def latest_logins(logins: list[Login]) -> list[dict[str, Any]]:
    """The latest time per binding, in primary-key order (a fixed lock order for
    concurrent batches)."""
    bindings: dict[int, datetime] = {}
    for binding_pk, _user_pk, at in logins:
        bindings[binding_pk] = max(at, bindings.get(binding_pk, at))
    return [{"pk": pk, "at": at} for pk, at in sorted(bindings.items())]


_ACCESS_COLUMNS = (
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
_REFRESH_COLUMNS = (
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


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    # Built from the fixed names above, never from input.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


_INSERT_ACCESS = _insert_sql("auth_access_tokens", _ACCESS_COLUMNS)
_INSERT_REFRESH = _insert_sql("auth_refresh_tokens", _REFRESH_COLUMNS)


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite types would store: UTC datetimes as ISO text, JSON as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _sqlite_access(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(row[c]) for c in _ACCESS_COLUMNS)


def _sqlite_refresh(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(row[c]) for c in _REFRESH_COLUMNS)


#: The grant of seed 004's card login (`service.CARD_GRANT`); its tokens prove the card.
CARD_GRANT = "urn:printcloud:params:oauth:grant-type:id-card"


@dataclass(frozen=True)
class TokenInfo:
    """What introspection and revocation know of a token."""

    kind: str
    digest: str
    tenant_pk: int
    tenant_id: str
    local_auth_cooperation: bool
    client_pk: int
    client_id: str
    username: str | None
    local_user: dict[str, Any] | None
    scope: str
    issued_at: datetime
    expires_at: datetime
    active: bool
    family_id: str | None
    #: The token acts as an administrator of its tenant now: its user is an admin, or it
    #: is a platform service client's own token (system tenant). Read at every lookup.
    admin: bool = False
    #: RFC 8176 authentication methods the issuer vouches for: `card` for a card login.
    amr: tuple[str, ...] = ()
    #: The tenant's `held_release` setting (issue 11, item 4).
    held_release: str = "card_or_owner"
    #: The tenant's display name (`auth_tenants.name`), for the other services' pages.
    tenant_name: str = ""


def lookup_sql(table: str, extra: str, where: str, lead: str = "") -> str:
    """The lookup of a token's facts in `table` (`token_info`'s columns, after `lead`)."""
    # The DBAPI cursor directly: this runs on every introspection, and SQLAlchemy's
    # per-execution result set-up cost several times the query itself.
    # Table, columns and condition come from fixed tables (here and in pgstore), never
    # from input.
    return f"""SELECT {lead}t.tenant_pk, te.tenant_id, te.issuer, te.local_auth_cooperation,
               t.client_pk, c.client_id, c.disabled, u.username, u.disabled, t.scope,
               t.issued_at, t.expires_at, t.revoked_at, t.family_id, {extra},
               u.is_admin, c.kind, te.held_release, te.name
        FROM {table} t
        JOIN auth_tenants te ON te.pk = t.tenant_pk
        JOIN auth_clients c ON c.pk = t.client_pk
        LEFT JOIN auth_users u ON u.pk = t.user_pk
        WHERE {where}"""  # noqa: S608


#: Per kind of token: its table and the columns only one kind has.
TOKEN_TABLES = (
    ("access_token", "auth_access_tokens", "t.local_user, NULL, t.grant_type"),
    ("refresh_token", "auth_refresh_tokens", "NULL, t.rotated_at, NULL"),
)
_LOOKUP = {
    (kind, mark): lookup_sql(table, extra, f"t.token_digest = {mark}")
    for kind, table, extra in TOKEN_TABLES
    for mark in ("?", "%s")
}


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps ISO text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def lookup_token(
    conn: Connection, *, issuer: str, token: str, hint: str | None = None
) -> TokenInfo | None:
    """The token's facts through a SQLAlchemy connection (the session paths)."""
    mark = "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
    return _lookup(conn.connection.dbapi_connection, mark, issuer=issuer, token=token, hint=hint)


@dataclass(frozen=True)
class CardRow:
    binding_pk: int
    last_login_at: datetime
    user_pk: int
    username: str
    display_name: str
    user_disabled: bool


def _card_sql(mark: str) -> str:
    # Built from the two fixed placeholder styles, never from input.
    return (
        "SELECT b.pk, b.last_login_at, u.pk, u.username, u.display_name, u.disabled "  # noqa: S608
        "FROM auth_card_bindings b JOIN auth_users u ON u.pk = b.user_pk "
        f"WHERE b.tenant_pk = {mark} AND b.card_digest = {mark}"
    )


_CARD = {mark: _card_sql(mark) for mark in ("?", "%s")}


def card_row(row: tuple[Any, ...]) -> CardRow:
    """A card binding from `_card_sql`'s columns (binding pk first)."""
    return CardRow(
        binding_pk=int(row[0]),
        last_login_at=_when(row[1]) or utcnow(),
        user_pk=int(row[2]),
        username=str(row[3]),
        display_name=str(row[4] or ""),
        user_disabled=bool(row[5]),
    )


class HotReader:
    """Introspection's reads on one long-lived autocommit DBAPI connection per thread.

    A pooled checkout costs a pre-ping, BEGIN and ROLLBACK round trip each, and a new
    connection re-plans the statement: on PostgreSQL that was ten times the query.
    A lost connection (database restart) is replaced once, then the error is raised."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mark = "?" if engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
        self._errors: tuple[type[BaseException], ...] = (
            engine.dialect.loaded_dbapi.Error,
            SQLAlchemyError,
        )
        self._local = threading.local()

    def lookup(self, *, issuer: str, token: str, hint: str | None = None) -> TokenInfo | None:
        for attempt in (1, 2):
            try:
                conn = self._connection()
                return _lookup(
                    conn.driver_connection, self.mark, issuer=issuer, token=token, hint=hint
                )
            except self._errors as exc:
                self._drop()
                if attempt == 2:
                    raise Unavailable("the database is unavailable; try again shortly") from exc
        return None  # pragma: no cover - the loop returns or raises

    def card_binding(self, *, tenant_pk: int, digest: str) -> CardRow | None:
        """Seed 004's determination unit on the hot path: the card's binding and user."""
        for attempt in (1, 2):
            try:
                cursor = self._connection().driver_connection.cursor()
                try:
                    cursor.execute(_CARD[self.mark], (tenant_pk, digest))
                    row = cursor.fetchone()
                finally:
                    cursor.close()
                return None if row is None else card_row(row)
            except self._errors as exc:
                self._drop()
                if attempt == 2:
                    raise Unavailable("the database is unavailable; try again shortly") from exc
        return None  # pragma: no cover - the loop returns or raises

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.raw_connection()
            driver = conn.driver_connection
            assert driver is not None
            if self.engine.dialect.name == "sqlite":
                driver.isolation_level = None  # autocommit: each read sees the latest commit
            else:
                driver.autocommit = True
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.invalidate()


def _lookup(
    dbapi_conn: Any, mark: str, *, issuer: str, token: str, hint: str | None
) -> TokenInfo | None:
    if not token or len(token) > 512:
        return None
    digest = crypto.token_digest(token)
    order = (
        ("refresh_token", "access_token")
        if hint == "refresh_token"
        else ("access_token", "refresh_token")
    )
    cursor = dbapi_conn.cursor()
    try:
        for kind in order:
            cursor.execute(_LOOKUP[(kind, mark)], (digest,))
            row = cursor.fetchone()
            if row is not None:
                return token_info(kind, digest, row, issuer=issuer, now=utcnow())
        return None
    finally:
        cursor.close()


def token_info(
    kind: str, digest: str, row: tuple[Any, ...], *, issuer: str, now: datetime
) -> TokenInfo | None:
    """What a lookup row (`_lookup_sql`'s columns) says of a token; None if another
    issuer's (every issuer's tokens share the tables)."""
    (
        tenant_pk,
        tenant_id,
        token_issuer,
        cooperation,
        client_pk,
        client_id,
        client_disabled,
        username,
        user_disabled,
        scope,
        issued_at,
        expires_at,
        revoked_at,
        family_id,
        local_user,
        rotated_at,
        grant_type,
        user_is_admin,
        client_kind,
        held_release,
        tenant_name,
    ) = row
    if token_issuer != issuer:
        return None
    expires = _when(expires_at)
    assert expires is not None
    active = (
        revoked_at is None
        and expires > now
        and not client_disabled
        and not user_disabled
        and rotated_at is None
    )
    if isinstance(local_user, str):
        local_user = json.loads(local_user)
    if username is not None:
        admin = bool(user_is_admin) and not user_disabled
    else:  # a client's own token: only the platform's service clients administer
        admin = client_kind == "service" and tenant_id == SYSTEM_TENANT
    return TokenInfo(
        kind=kind,
        digest=digest,
        tenant_pk=int(tenant_pk),
        tenant_id=str(tenant_id),
        local_auth_cooperation=bool(cooperation),
        client_pk=int(client_pk),
        client_id=str(client_id),
        username=username,
        local_user=local_user,
        scope=scope or "",
        issued_at=_when(issued_at) or expires,
        expires_at=expires,
        active=active,
        family_id=family_id,
        admin=admin,
        amr=("card",) if grant_type == CARD_GRANT else (),
        held_release=str(held_release or "card_or_owner"),
        tenant_name=str(tenant_name or ""),
    )
