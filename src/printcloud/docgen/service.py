"""Batch printing information per tenant and batch-print requests (seed 000, server A).

- The **secret key** (FIG. 14, S1401–S1406): a UUID4 issued once per tenant and
  shown once; stored sealed with the instance secret, because Digest (RFC 7616)
  needs the key itself. A rotation keeps the previous key valid for an overlap
  period, so the CRM can be given the new key before the old one stops working.
- The two **token sets** of FIG. 10, sealed: the CRM's (server B, from idp-b,
  FIG. 13, S1313) and the print service's (server C, from idp-a, FIG. 11, S1108);
  found by tenant for the batch flow (S1515–S1516); replaced on refresh
  (S1605, S1610).
- **Batch requests** as received (S1503) with their state and history.

Every function takes the tenant explicitly and every query filters on it;
another tenant's request is "not found". Writes that must not race (issuing a
key, rotating it, claiming a refresh) are single conditional UPDATEs.

Request states: `received` → `verifying` → `fetching` → `rendering` → `sending`
→ `completed`, or `suspended` (with the reason: refused Digest S1512, token
invalid and not refreshable S1612, CRM error S1606) or `failed`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict, Unpack

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.core.logs import get_logger
from printcloud.webhooks import emit

from .models import BatchRequest, BatchSettings

log = get_logger("docgen.service")

Kind = Literal["crm", "print"]
KINDS: tuple[Kind, ...] = ("crm", "print")
SOURCES = ("crm", "user")
ACTIVE = ("received", "verifying", "fetching", "rendering", "sending")
FINAL = ("completed", "suspended", "failed")
STATES = ACTIVE + FINAL
#: How long a rotated-out key stays valid by default, and at most.
DEFAULT_OVERLAP = timedelta(days=7)
MAX_OVERLAP = timedelta(days=90)
#: How long a claimed refresh may take before another caller may try.
REFRESH_LEASE = timedelta(seconds=60)


# -- what callers get back --------------------------------------------------------------


@dataclass(frozen=True)
class KeyState:
    """Whether the tenant has a secret key, without the key."""

    issued: bool
    issued_at: datetime | None = None
    issued_by: str | None = None
    #: While a rotated-out key is still accepted (the overlap period), until when.
    previous_valid_until: datetime | None = None


@dataclass(frozen=True)
class IssuedKey:
    """S1405: a key just issued or rotated, in clear, shown this once."""

    tenant_id: str
    secret_key: str
    issued_at: datetime
    #: When a rotation keeps the rotated-out key valid (the overlap), until when.
    previous_valid_until: datetime | None = None


@dataclass(frozen=True)
class StoredTokens:
    """One token set, opened. `stamp` identifies this stored version (for refreshes)."""

    kind: Kind
    issuer: str
    #: The tenant the tokens belong to at their issuer (the CRM's own tenant for "crm").
    tenant_id: str
    user: str | None
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    scope: str
    expires_at: datetime | None
    set_at: datetime | None
    set_by: str | None
    refreshed_at: datetime | None
    problem: str | None
    stamp: str = field(repr=False, default="")

    def expired(self, *, now: datetime | None = None, margin: float = 0.0) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at <= (now or utcnow()) + timedelta(seconds=margin)


@dataclass(frozen=True)
class TokenState:
    """What the settings page shows about a token set: never the tokens."""

    kind: Kind
    present: bool
    issuer: str | None = None
    tenant_id: str | None = None
    user: str | None = None
    scope: str | None = None
    expires_at: datetime | None = None
    set_at: datetime | None = None
    set_by: str | None = None
    refreshed_at: datetime | None = None
    refreshable: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class TenantTokens:
    """S1515–S1516: the tenant's two token sets, found by its tenant ID."""

    crm: StoredTokens | None
    print: StoredTokens | None


# -- rows ----------------------------------------------------------------------------------


def _insert_ignoring_conflict(
    db: Session, model: type[Any], index: list[str], **values: Any
) -> None:
    """INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL): concurrent creators
    of one row both succeed and only one row exists."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=index))


def _settings(db: Session, tenant_id: str) -> BatchSettings | None:
    return db.scalar(
        select(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )


def _ensure(db: Session, tenant_id: str, now: datetime) -> None:
    _insert_ignoring_conflict(
        db, BatchSettings, ["tenant_id"], tenant_id=tenant_id, created_at=now, updated_at=now
    )


def has_settings(db: Session, *, tenant_id: str) -> bool:
    """Whether docgen knows the tenant (its admin has set something up)."""
    return (
        db.scalar(select(BatchSettings.tenant_id).where(BatchSettings.tenant_id == tenant_id))
        is not None
    )


# -- the secret key (FIG. 14) ----------------------------------------------------------------


def _check_overlap(overlap: timedelta) -> None:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise InvalidRequest(
            f"the overlap must be between 0 and {MAX_OVERLAP.days * 24} hours",
            field="overlap_hours",
        )


def issue_secret_key(
    db: Session,
    *,
    tenant_id: str,
    box: SecretBox,
    actor: str,
    rotate: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> str:
    """S1403–S1404: a new secret key for the tenant, answered once in clear.

    Once a key exists it is not generated again (S1404) unless `rotate`, which
    replaces it and keeps the old one valid for `overlap`."""
    now = now or utcnow()
    _check_overlap(overlap)
    _ensure(db, tenant_id, now)
    key = str(uuid.uuid4())
    done = db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id, BatchSettings.key_sealed.is_(None))
        .values(key_sealed=box.seal(key), key_issued_at=now, key_issued_by=actor, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 1:  # type: ignore[attr-defined]
        log.info("secret key issued", extra={"fields": {"tenant": tenant_id, "by": actor}})
        return key
    if rotate:
        return rotate_secret_key(
            db, tenant_id=tenant_id, box=box, actor=actor, overlap=overlap, now=now
        )
    raise Conflict("a secret key was already issued for this tenant; rotate it to get a new one")


def rotate_secret_key(
    db: Session,
    *,
    tenant_id: str,
    box: SecretBox,
    actor: str,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> str:
    """A new key replaces the current one, which stays valid for `overlap` (zero: at
    once invalid). A key still in its overlap from an earlier rotation is dropped."""
    now = now or utcnow()
    _check_overlap(overlap)
    row = _settings(db, tenant_id)
    if row is None or row.key_sealed is None:
        raise Conflict("no secret key has been issued for this tenant yet; issue one first")
    key = str(uuid.uuid4())
    done = db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id, BatchSettings.key_sealed == row.key_sealed)
        .values(
            key_sealed=box.seal(key),
            key_issued_at=now,
            key_issued_by=actor,
            previous_key_sealed=row.key_sealed if overlap > timedelta(0) else None,
            previous_key_valid_until=now + overlap if overlap > timedelta(0) else None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the secret key was changed at the same time; reload and try again")
    log.info(
        "secret key rotated",
        extra={"fields": {"tenant": tenant_id, "by": actor, "overlap_s": overlap.total_seconds()}},
    )
    return key


def issue_key(
    db: Session,
    *,
    tenant_id: str,
    box: SecretBox,
    actor: str,
    rotate: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> IssuedKey:
    """Issue (S1403–S1404) or rotate the key; answers it in clear, this once."""
    if rotate:
        key = rotate_secret_key(db, tenant_id=tenant_id, box=box, actor=actor, overlap=overlap)
    else:
        key = issue_secret_key(db, tenant_id=tenant_id, box=box, actor=actor)
    state = key_state(db, tenant_id=tenant_id)
    return IssuedKey(
        tenant_id=tenant_id,
        secret_key=key,
        issued_at=state.issued_at or utcnow(),
        previous_valid_until=state.previous_valid_until,
    )


def end_key_overlap(db: Session, *, tenant_id: str, now: datetime | None = None) -> None:
    """Stop accepting the rotated-out key now (once the CRM has the new one)."""
    db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .values(previous_key_sealed=None, previous_key_valid_until=None, updated_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def key_for(
    db: Session, *, tenant_id: str, box: SecretBox, now: datetime | None = None
) -> list[str]:
    """S1511: the tenant's valid secret keys, current first (two during an overlap)."""
    now = now or utcnow()
    row = _settings(db, tenant_id)
    if row is None or row.key_sealed is None:
        return []
    sealed = [row.key_sealed]
    if (
        row.previous_key_sealed
        and row.previous_key_valid_until
        and row.previous_key_valid_until > now
    ):
        sealed.append(row.previous_key_sealed)
    keys = []
    for value in sealed:
        try:
            keys.append(box.open(value))
        except ValueError:  # sealed under an instance secret no longer configured
            log.error(
                "a stored secret key cannot be opened", extra={"fields": {"tenant": tenant_id}}
            )
    return keys


def key_state(db: Session, *, tenant_id: str, now: datetime | None = None) -> KeyState:
    now = now or utcnow()
    row = _settings(db, tenant_id)
    if row is None or row.key_sealed is None:
        return KeyState(issued=False)
    until = row.previous_key_valid_until
    return KeyState(
        issued=True,
        issued_at=row.key_issued_at,
        issued_by=row.key_issued_by,
        previous_valid_until=until if row.previous_key_sealed and until and until > now else None,
    )


# -- the token sets (FIG. 10) ----------------------------------------------------------------


class TokenSet(TypedDict):
    """A token set as an issuer gave it, to be sealed and stored for a tenant."""

    box: SecretBox
    actor: str
    issuer: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_at: datetime | None
    user: NotRequired[str | None]
    refreshed: NotRequired[bool]  # S1605/S1610: a refresh, not a new consent
    now: NotRequired[datetime | None]


def store_crm_tokens(
    db: Session, *, tenant_id: str, crm_tenant_id: str, **tokens: Unpack[TokenSet]
) -> None:
    """S1313 (and S1605 with `refreshed`): the CRM's tokens, sealed, for the tenant."""
    _store(db, kind="crm", tenant_id=tenant_id, extra={"tenant_id": crm_tenant_id}, **tokens)


def store_print_tokens(db: Session, *, tenant_id: str, **tokens: Unpack[TokenSet]) -> None:
    """S1108 (and S1610 with `refreshed`): the print service's tokens, sealed."""
    _store(db, kind="print", tenant_id=tenant_id, **tokens)


def _store(
    db: Session,
    *,
    kind: Kind,
    tenant_id: str,
    box: SecretBox,
    actor: str,
    issuer: str,
    access_token: str,
    refresh_token: str | None,
    scope: str,
    expires_at: datetime | None,
    user: str | None = None,
    refreshed: bool = False,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    now = now or utcnow()
    if not access_token:
        raise InvalidRequest("an access token is required", field="access_token")
    _ensure(db, tenant_id, now)
    values: dict[str, Any] = {
        "issuer": issuer,
        "user": user,
        "access_sealed": box.seal(access_token),
        "refresh_sealed": box.seal(refresh_token) if refresh_token else None,
        "scope": scope,
        "expires_at": expires_at,
        "problem": None,
        "refresh_lease": None,
        **(extra or {}),
    }
    if refreshed:
        values["refreshed_at"] = now
    else:
        values.update(set_at=now, set_by=actor, refreshed_at=None)
    db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .values(updated_at=now, **{f"{kind}_{name}": value for name, value in values.items()})
        .execution_options(synchronize_session=False)
    )


def _open(row: BatchSettings, kind: Kind, box: SecretBox) -> StoredTokens | None:
    access_sealed: str | None = getattr(row, f"{kind}_access_sealed")
    if not access_sealed:
        return None
    refresh_sealed: str | None = getattr(row, f"{kind}_refresh_sealed")
    try:
        access = box.open(access_sealed)
        refresh = box.open(refresh_sealed) if refresh_sealed else None
    except ValueError:
        log.error(
            "stored tokens cannot be opened",
            extra={"fields": {"tenant": row.tenant_id, "kind": kind}},
        )
        return None
    return StoredTokens(
        kind=kind,
        issuer=getattr(row, f"{kind}_issuer") or "",
        tenant_id=(row.crm_tenant_id if kind == "crm" else row.tenant_id) or "",
        user=getattr(row, f"{kind}_user"),
        access_token=access,
        refresh_token=refresh,
        scope=getattr(row, f"{kind}_scope") or "",
        expires_at=getattr(row, f"{kind}_expires_at"),
        set_at=getattr(row, f"{kind}_set_at"),
        set_by=getattr(row, f"{kind}_set_by"),
        refreshed_at=getattr(row, f"{kind}_refreshed_at"),
        problem=getattr(row, f"{kind}_problem"),
        stamp=refresh_sealed or "",
    )


def tokens_for(db: Session, *, tenant_id: str, box: SecretBox) -> TenantTokens:
    """S1515–S1516: the CRM and print token sets stored for `tenant_id`."""
    row = _settings(db, tenant_id)
    if row is None:
        return TenantTokens(crm=None, print=None)
    return TenantTokens(crm=_open(row, "crm", box), print=_open(row, "print", box))


def token_set(db: Session, *, tenant_id: str, kind: Kind, box: SecretBox) -> StoredTokens | None:
    row = _settings(db, tenant_id)
    return _open(row, kind, box) if row is not None else None


def token_states(db: Session, *, tenant_id: str) -> dict[Kind, TokenState]:
    row = _settings(db, tenant_id)
    states: dict[Kind, TokenState] = {}
    for kind in KINDS:
        if row is None or not getattr(row, f"{kind}_access_sealed"):
            problem = getattr(row, f"{kind}_problem") if row is not None else None
            states[kind] = TokenState(kind=kind, present=False, problem=problem)
            continue
        states[kind] = TokenState(
            kind=kind,
            present=True,
            issuer=getattr(row, f"{kind}_issuer"),
            tenant_id=row.crm_tenant_id if kind == "crm" else row.tenant_id,
            user=getattr(row, f"{kind}_user"),
            scope=getattr(row, f"{kind}_scope"),
            expires_at=getattr(row, f"{kind}_expires_at"),
            set_at=getattr(row, f"{kind}_set_at"),
            set_by=getattr(row, f"{kind}_set_by"),
            refreshed_at=getattr(row, f"{kind}_refreshed_at"),
            refreshable=bool(getattr(row, f"{kind}_refresh_sealed")),
            problem=getattr(row, f"{kind}_problem"),
        )
    return states


def forget_tokens(db: Session, *, tenant_id: str, kind: Kind, now: datetime | None = None) -> None:
    """Remove a token set (after revoking it at its issuer, which the caller does)."""
    names = (
        "issuer",
        "user",
        "access_sealed",
        "refresh_sealed",
        "scope",
        "expires_at",
        "set_at",
        "set_by",
        "refreshed_at",
        "problem",
        "refresh_lease",
    )
    values = {f"{kind}_{name}": None for name in names}
    if kind == "crm":
        values["crm_tenant_id"] = None
    db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .values(updated_at=now or utcnow(), **values)
        .execution_options(synchronize_session=False)
    )


def note_token_problem(
    db: Session, *, tenant_id: str, kind: Kind, problem: str, now: datetime | None = None
) -> None:
    """Remember why a token set stopped working (shown on the settings page); ends a lease."""
    db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .values(
            updated_at=now or utcnow(),
            **{f"{kind}_problem": problem[:1000], f"{kind}_refresh_lease": None},
        )
        .execution_options(synchronize_session=False)
    )


def claim_refresh(
    db: Session, *, tenant_id: str, kind: Kind, stamp: str, now: datetime | None = None
) -> bool:
    """Take the right to refresh the token set whose stored version is `stamp`.

    False when another caller holds an unexpired lease, or the set changed since
    it was read (someone refreshed it): the caller reads it again. Only one
    refresh runs at a time, across processes, because the issuers rotate refresh
    tokens and revoke the whole family when a used one is presented again."""
    now = now or utcnow()
    lease = getattr(BatchSettings, f"{kind}_refresh_lease")
    refresh = getattr(BatchSettings, f"{kind}_refresh_sealed")
    done = db.execute(
        update(BatchSettings)
        .where(
            BatchSettings.tenant_id == tenant_id,
            (lease.is_(None)) | (lease < now),
            refresh == stamp,
        )
        .values(**{f"{kind}_refresh_lease": now + REFRESH_LEASE})
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_refresh(db: Session, *, tenant_id: str, kind: Kind) -> None:
    db.execute(
        update(BatchSettings)
        .where(BatchSettings.tenant_id == tenant_id)
        .values(**{f"{kind}_refresh_lease": None})
        .execution_options(synchronize_session=False)
    )


# -- batch-print requests ------------------------------------------------------------------


def _step(state: str, step: str, detail: str, now: datetime) -> dict[str, Any]:
    return {"at": now.isoformat(), "step": step, "state": state, "detail": detail[:1000]}


def record_request(
    db: Session,
    *,
    tenant_id: str,
    source: str,
    state: str = "received",
    step: str = "S1503",
    reason: str | None = None,
    detail: str = "",
    run_id: str | None = None,
    job: str = "",
    parameters: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[BatchRequest, bool]:
    """Record a batch-print request as received (S1503) or refused (S1512, `suspended`
    with the reason). Answers (request, created): a `run_id` seen before for the
    tenant answers the request recorded then, so a retried call is one request."""
    if source not in SOURCES:
        raise InvalidRequest(f"source must be one of {', '.join(SOURCES)}", field="source")
    if state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}", field="state")
    now = now or utcnow()
    request_id = secrets.token_hex(16)
    values: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "received_at": now,
        "source": source,
        "state": state,
        "reason": reason[:1000] if reason else None,
        "run_id": run_id,
        "job": job[:200],
        "parameters": parameters or {},
        "steps": [_step(state, step, detail or reason or "", now)],
        "print_job_ids": [],
        "updated_at": now,
        "finished_at": now if state in FINAL else None,
    }
    if run_id is None:
        row = BatchRequest(**values)
        db.add(row)
        db.flush()
        announce(db, row, step)
        return row, True
    _insert_ignoring_conflict(db, BatchRequest, ["tenant_id", "run_id"], **values)
    row_or_none = db.scalar(
        select(BatchRequest)
        .where(BatchRequest.tenant_id == tenant_id, BatchRequest.run_id == run_id)
        .execution_options(populate_existing=True)
    )
    assert row_or_none is not None
    created = row_or_none.request_id == request_id
    if created:
        announce(db, row_or_none, step)
    return row_or_none, created


def get_request(db: Session, *, tenant_id: str, request_id: str) -> BatchRequest:
    row = db.scalar(
        select(BatchRequest).where(
            BatchRequest.tenant_id == tenant_id, BatchRequest.request_id == request_id
        )
    )
    if row is None:
        raise NotFound("no such batch-print request", field="request_id")
    return row


def list_requests(db: Session, *, tenant_id: str, limit: int = 50) -> list[BatchRequest]:
    return list(
        db.scalars(
            select(BatchRequest)
            .where(BatchRequest.tenant_id == tenant_id)
            .order_by(BatchRequest.received_at.desc(), BatchRequest.request_id)
            .limit(max(1, min(limit, 500)))
        )
    )


#: At most this many batch runs in one period's report (a nightly job a day is 31 a month).
MAX_RUNS = 5000


def batch_runs(
    db: Session, *, tenant_id: str, start: datetime, end: datetime
) -> list[BatchRequest]:
    """The CRM's batch runs (the nightly requests, `source` "crm") received from `start`
    (included) to `end` (excluded), oldest first, at most `MAX_RUNS`: what the usage
    report shows of them (documents, state, why one was suspended)."""
    if not start < end:
        raise InvalidRequest("the period's start must be before its end", field="start")
    return list(
        db.scalars(
            select(BatchRequest)
            .where(
                BatchRequest.tenant_id == tenant_id,
                BatchRequest.source == "crm",
                BatchRequest.received_at >= start,
                BatchRequest.received_at < end,
            )
            .order_by(BatchRequest.received_at, BatchRequest.request_id)
            .limit(MAX_RUNS)
        )
    )


def advance_request(
    db: Session,
    *,
    tenant_id: str,
    request_id: str,
    state: str,
    step: str,
    detail: str = "",
    reason: str | None = None,
    print_job_id: str | None = None,
    now: datetime | None = None,
) -> BatchRequest:
    """Move a request to `state` at seed step `step` (for the batch flow). A request
    that has ended stays ended: moving it again is a conflict."""
    if state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}", field="state")
    now = now or utcnow()
    row = get_request(db, tenant_id=tenant_id, request_id=request_id)
    if row.state in FINAL:
        raise Conflict(f"the request has already ended ({row.state})")
    row.state = state
    row.steps = [*row.steps, _step(state, step, detail or reason or "", now)]
    if reason is not None:
        row.reason = reason[:1000]
    if print_job_id is not None:
        row.print_job_ids = [*row.print_job_ids, print_job_id]
    row.updated_at = now
    if state in FINAL:
        row.finished_at = now
    db.flush()
    announce(db, row, step)
    return row


#: The request states a webhook subscriber hears of (docs/webhooks.md).
WEBHOOK_EVENTS = {"completed": "batch.completed", "suspended": "batch.suspended"}


def announce(db: Session, row: BatchRequest, step: str) -> None:
    """A request's end for the tenant's webhook subscribers, in the caller's transaction
    (an outbox row, sent after the commit; nothing when nobody subscribed)."""
    event_type = WEBHOOK_EVENTS.get(row.state)
    if event_type is None:
        return
    emit(
        db,
        tenant_id=row.tenant_id,
        event_type=event_type,
        data={
            "request_id": row.request_id,
            "state": row.state,
            "reason": row.reason,
            "step": step,
            "job": row.job,
            "source": row.source,
            "print_job_ids": list(row.print_job_ids or []),
        },
        ordering_key=f"batch:{row.request_id}",
    )
