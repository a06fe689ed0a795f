"""The conversion session store shared by stateless conversion workers
(seed 003, SE001 + DB004; FIG. 6 S1101–S1111, FIG. 7 S1205–S1213, FIG. 8
S1304–S1318, FIG. 11).

Any worker can continue any job because everything a later step needs lives
here, keyed by the *DB index* built from the job ID, the printer ID and a fixed
string (S1104):

- `open_session` (FIG. 6): refuses a DB index that already has a record
  (S1105 → S1111); otherwise creates the record, generates the token, records
  its creation time (S1106–S1109) and answers the token (S1110); the record
  also keeps the blob key of the job's print data when the intake stored it
  (`job_data_key`: that job's key and no other), so that the download step
  reads it from the shared blob store;
- `record_download` (FIG. 7): refuses when there is no record (S1206 → S1213);
  stores the downloaded file's path in the record (S1210);
- `require` (FIG. 8): the record, or an error when there is none (S1305 → S1318);
- `record_conversion`: the converted data's ID (S1312–S1314);
- `check_token` (FIG. 10): the token must match and be younger than the timeout;
- `close` (FIG. 11): deletes the record.

Two backends pass the same tests: a table in the database (default) and Redis
(`PRINTCLOUD_SESSION_STORE=redis://…`). A store that cannot be reached raises
`Unavailable` (503), never a bare driver error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from printcloud.core import crypto
from printcloud.core.db import Database, utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, Unauthorized, Unavailable

from .models import ConversionSessionRow

_FIXED = "cnv"  # S1104's fixed string
_MAX_ID = 128


def session_key(job_id: str, printer_id: str) -> str:
    """The DB index of S1104: job ID + printer ID + a fixed string."""
    for name, value in (("job_id", job_id), ("printer_id", printer_id)):
        if not value or len(value) > _MAX_ID or ":" in value or not value.isprintable():
            raise InvalidRequest(
                f"{name} must be 1-{_MAX_ID} printable characters without ':'", field=name
            )
    return f"{_FIXED}:{job_id}:{printer_id}"


_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def job_data_key(job_id: str) -> str:
    """The blob key under which the intake stores a job's print data.

    One folder per job, named by the job ID, which must be one safe path segment:
    nothing in it can walk out of `jobs/` (no `/`, no `..`, no leading dot)."""
    if not _JOB_ID.match(job_id):
        raise InvalidRequest(
            "job_id must be 1-128 letters, digits, '_' or '-' to name its print data",
            field="job_id",
        )
    return f"jobs/{job_id}/data.pdf"


def check_data_key(data_key: str, *, job_id: str) -> str:
    """`data_key` if it is the blob key of job `job_id`'s print data, else InvalidRequest.

    A conversion worker reads only that blob for that job: a key of another job, or
    one that climbs out of the blob store, is refused before any file is opened."""
    if data_key != job_data_key(job_id):
        raise InvalidRequest(
            "data_key is not the blob key of this job's print data", field="data_key"
        )
    return data_key


@dataclass(frozen=True)
class ConversionSession:
    key: str
    tenant_id: str
    job_id: str
    printer_id: str
    token_digest: str
    token_created_at: datetime
    created_at: datetime
    updated_at: datetime
    download_path: str | None = None
    converted_id: str | None = None
    #: The job's print data in the shared blob store (`job_data_key`), when the intake
    #: stored it; None: the download step fetches the job's URL.
    data_key: str | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)


class Backend(Protocol):
    def insert(self, session: ConversionSession) -> bool: ...
    def get(self, key: str) -> ConversionSession | None: ...
    def update(
        self, key: str, changes: dict[str, Any], event: dict[str, Any]
    ) -> ConversionSession | None: ...
    def delete(self, key: str) -> bool: ...
    def created_before(self, cutoff: datetime) -> list[str]: ...


class SessionStore:
    """The seed's rules over a backend."""

    def __init__(self, backend: Backend, *, token_timeout: timedelta) -> None:
        self.backend = backend
        self.token_timeout = token_timeout

    def open_session(
        self,
        *,
        tenant_id: str,
        job_id: str,
        printer_id: str,
        worker: str,
        data_key: str | None = None,
    ) -> tuple[str, str]:
        """FIG. 6: answers (DB index, token). The token is shown once; only its digest is kept.

        `data_key`, when given, must be the job's own blob key (`job_data_key`)."""
        key = session_key(job_id, printer_id)
        if data_key is not None:
            check_data_key(data_key, job_id=job_id)
        token = crypto.new_token()
        now = utcnow()
        session = ConversionSession(
            key=key,
            tenant_id=tenant_id,
            job_id=job_id,
            printer_id=printer_id,
            token_digest=crypto.token_digest(token),
            token_created_at=now,
            created_at=now,
            updated_at=now,
            data_key=data_key,
            history=({"step": "token", "worker": worker, "at": now.isoformat()},),
        )
        if not self.backend.insert(session):
            raise Conflict(
                f"a token was already requested for job {job_id} on printer {printer_id}",
                field="job_id",
            )
        return key, token

    def require(self, *, tenant_id: str, job_id: str, printer_id: str) -> ConversionSession:
        """The record of S1206/S1305, or NotFound (S1213/S1318), also for another tenant's."""
        key = session_key(job_id, printer_id)
        session = self.backend.get(key)
        if session is None or session.tenant_id != tenant_id:
            raise NotFound(f"no token was requested for job {job_id} on printer {printer_id}")
        return session

    def record_download(
        self, *, tenant_id: str, job_id: str, printer_id: str, path: str, worker: str
    ) -> ConversionSession:
        """S1210: the downloaded file's path goes into the record."""
        session = self.require(tenant_id=tenant_id, job_id=job_id, printer_id=printer_id)
        return self._update(session, {"download_path": path}, step="download", worker=worker)

    def record_conversion(
        self, *, tenant_id: str, job_id: str, printer_id: str, converted_id: str, worker: str
    ) -> ConversionSession:
        session = self.require(tenant_id=tenant_id, job_id=job_id, printer_id=printer_id)
        return self._update(
            session,
            {"converted_id": converted_id, "download_path": None},
            step="convert",
            worker=worker,
        )

    def record_step(
        self, *, tenant_id: str, job_id: str, printer_id: str, step: str, worker: str
    ) -> ConversionSession:
        session = self.require(tenant_id=tenant_id, job_id=job_id, printer_id=printer_id)
        return self._update(session, {}, step=step, worker=worker)

    def check_token(self, session: ConversionSession, token: str) -> None:
        """FIG. 10: the right token, younger than the timeout."""
        if not token or not crypto.equal(session.token_digest, crypto.token_digest(token)):
            raise Unauthorized("the token does not match this print job")
        if utcnow() - session.token_created_at > self.token_timeout:
            raise Unauthorized("the token has timed out")

    def close(self, *, tenant_id: str, job_id: str, printer_id: str) -> bool:
        """FIG. 11: delete the record (the caller deletes the converted data)."""
        key = session_key(job_id, printer_id)
        session = self.backend.get(key)
        if session is None or session.tenant_id != tenant_id:
            return False
        return self.backend.delete(key)

    def stale(self, *, older_than: timedelta) -> list[ConversionSession]:
        """Records of jobs that never completed, for the sweeper."""
        out = []
        for key in self.backend.created_before(utcnow() - older_than):
            session = self.backend.get(key)
            if session is not None:
                out.append(session)
        return out

    def forget(self, session: ConversionSession) -> bool:
        return self.backend.delete(session.key)

    def _update(
        self, session: ConversionSession, changes: dict[str, Any], *, step: str, worker: str
    ) -> ConversionSession:
        now = utcnow()
        event = {"step": step, "worker": worker, "at": now.isoformat()}
        updated = self.backend.update(session.key, {**changes, "updated_at": now}, event)
        if updated is None:  # deleted between the read and the write
            raise NotFound(
                f"no token was requested for job {session.job_id} on printer {session.printer_id}"
            )
        return updated


# -- the database backend ----------------------------------------------------------------


@contextmanager
def _database_answers() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(
            f"the session store (database) is unavailable: {_cause(exc.orig or exc)}"
        ) from exc


class SqlBackend:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, session: ConversionSession) -> bool:
        row = {**asdict(session), "history": list(session.history)}
        try:
            with _database_answers(), self.db.engine.begin() as conn:
                conn.execute(insert(ConversionSessionRow), [row])
        except IntegrityError:
            return False
        return True

    def get(self, key: str) -> ConversionSession | None:
        with _database_answers(), self.db.sessions() as s:
            row = s.get(ConversionSessionRow, key)
            return _from_row(row) if row is not None else None

    def update(
        self, key: str, changes: dict[str, Any], event: dict[str, Any]
    ) -> ConversionSession | None:
        with _database_answers(), self.db.session() as s:
            row = s.execute(
                select(ConversionSessionRow)
                .where(ConversionSessionRow.key == key)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.history = [*row.history, event]
            s.flush()
            return _from_row(row)

    def delete(self, key: str) -> bool:
        with _database_answers(), self.db.engine.begin() as conn:
            result = conn.execute(
                delete(ConversionSessionRow).where(ConversionSessionRow.key == key)
            )
        return bool(result.rowcount)

    def created_before(self, cutoff: datetime) -> list[str]:
        with _database_answers(), self.db.engine.connect() as conn:
            rows = conn.execute(
                select(ConversionSessionRow.key).where(ConversionSessionRow.created_at < cutoff)
            )
            return [r[0] for r in rows]


def _from_row(row: ConversionSessionRow) -> ConversionSession:
    return ConversionSession(
        key=row.key,
        tenant_id=row.tenant_id,
        job_id=row.job_id,
        printer_id=row.printer_id,
        token_digest=row.token_digest,
        token_created_at=row.token_created_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        download_path=row.download_path,
        converted_id=row.converted_id,
        data_key=row.data_key,
        history=tuple(row.history or ()),
    )


# -- the Redis backend ---------------------------------------------------------------------

_INSERT_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_UPDATE_IF_PRESENT = """
local current = redis.call('GET', KEYS[1])
if not current then return false end
local record = cjson.decode(current)
local changes = cjson.decode(ARGV[1])
for k, v in pairs(changes) do
  if v == cjson.null then record[k] = nil else record[k] = v end
end
local history = record['history'] or {}
history[#history + 1] = cjson.decode(ARGV[2])
record['history'] = history
local encoded = cjson.encode(record)
redis.call('SET', KEYS[1], encoded)
return encoded
"""


class RedisBackend:
    """One JSON document a record, updated by Lua scripts so that each step is atomic;
    a sorted set by creation time for the sweeper."""

    def __init__(self, url: str, *, prefix: str = "pc:cnv") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self.prefix = prefix
        self._insert = self._redis.register_script(_INSERT_IF_ABSENT)
        self._update = self._redis.register_script(_UPDATE_IF_PRESENT)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:rec:{key}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:created"

    def insert(self, session: ConversionSession) -> bool:
        document = _encode(session)
        try:
            return bool(
                self._insert(
                    keys=[self._key(session.key), self._index],
                    args=[document, session.created_at.timestamp(), session.key],
                )
            )
        except self._errors as exc:
            raise _redis_down(exc) from exc

    def get(self, key: str) -> ConversionSession | None:
        try:
            raw = self._redis.get(self._key(key))
        except self._errors as exc:
            raise _redis_down(exc) from exc
        return _decode(raw) if raw else None

    def update(
        self, key: str, changes: dict[str, Any], event: dict[str, Any]
    ) -> ConversionSession | None:
        encoded = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in changes.items()}
        try:
            raw = self._update(keys=[self._key(key)], args=[json.dumps(encoded), json.dumps(event)])
        except self._errors as exc:
            raise _redis_down(exc) from exc
        return _decode(raw) if raw else None

    def delete(self, key: str) -> bool:
        try:
            pipe = self._redis.pipeline()
            pipe.delete(self._key(key))
            pipe.zrem(self._index, key)
            deleted, _ = pipe.execute()
        except self._errors as exc:
            raise _redis_down(exc) from exc
        return bool(deleted)

    def created_before(self, cutoff: datetime) -> list[str]:
        try:
            keys = self._redis.zrangebyscore(self._index, "-inf", cutoff.timestamp())
        except self._errors as exc:
            raise _redis_down(exc) from exc
        return [k.decode() if isinstance(k, bytes) else str(k) for k in keys]


def _redis_down(exc: BaseException) -> Unavailable:
    return Unavailable(f"the session store (Redis) is unavailable: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    """The driver's reason in one line (no statement, no parameters): what an operator
    needs to see in the job's log and the 503's description."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _encode(session: ConversionSession) -> str:
    data = asdict(session)
    for name in ("token_created_at", "created_at", "updated_at"):
        data[name] = data[name].isoformat()
    data["history"] = list(session.history)
    return json.dumps(data)


def _decode(raw: bytes | str) -> ConversionSession:
    data = json.loads(raw)
    for name in ("token_created_at", "created_at", "updated_at"):
        data[name] = datetime.fromisoformat(data[name])
    data["history"] = tuple(data.get("history") or ())
    data.setdefault("download_path", None)
    data.setdefault("converted_id", None)
    data.setdefault("data_key", None)  # a record written before the field existed
    # cjson turns an empty history list into {}: normalise.
    if isinstance(data["history"], dict):
        data["history"] = ()
    return ConversionSession(**data)


def make_store(*, url: str | None, db: Database, token_timeout: timedelta) -> SessionStore:
    """The database table by default; Redis when `url` is `redis://…`."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return SessionStore(RedisBackend(url), token_timeout=token_timeout)
    if url not in (None, "", "sql", "database"):
        raise ValueError(f"PRINTCLOUD_SESSION_STORE must be 'sql' or a redis:// URL, not {url!r}")
    return SessionStore(SqlBackend(db), token_timeout=token_timeout)


__all__ = [
    "ConversionSession",
    "RedisBackend",
    "SessionStore",
    "SqlBackend",
    "check_data_key",
    "job_data_key",
    "make_store",
    "session_key",
]
