"""The append-only ledger (issue 18): accounts, balanced transactions, allowances.

Double entry: every transaction's entries sum to zero (`post` refuses otherwise), and
rows are only ever added. Money comes in from the tenant's `funding` account (top-ups,
allowances, adjustments), a job's estimate waits in `holds` between intake and the
printer's result, and what was printed goes to `sales`. A balance is the sum of an
account's entries, read every time (`balance`); nothing stores it.

Every function takes the tenant and every query filters on it.
"""

from __future__ import annotations

import secrets
from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from . import events, prices
from .models import AccountingSettingsRow, AccountRow, LedgerEntryRow, LedgerTransactionRow

KINDS = ("user", "group", "shared")
SYSTEM = "system"
FUNDING, HOLDS, SALES = "funding", "holds", "sales"


class Unbalanced(ValueError):
    """A transaction whose entries do not sum to zero: a bug, never recorded."""


# -- accounts ---------------------------------------------------------------------------


def find(db: Session, *, tenant_id: str, kind: str, name: str) -> AccountRow | None:
    return db.scalar(
        select(AccountRow).where(
            AccountRow.tenant_id == tenant_id, AccountRow.kind == kind, AccountRow.name == name
        )
    )


def get(db: Session, *, tenant_id: str, kind: str, name: str) -> AccountRow:
    row = find(db, tenant_id=tenant_id, kind=kind, name=name)
    if row is None:
        raise NotFound(f"no {kind} account {name!r}", field="name")
    return row


def ensure(
    db: Session,
    *,
    tenant_id: str,
    kind: str,
    name: str,
    defaults: AccountingSettingsRow | None = None,
) -> AccountRow:
    """The account, made when missing (a user's with the tenant's defaults). A concurrent
    maker wins the unique constraint; this one then reads its row."""
    row = find(db, tenant_id=tenant_id, kind=kind, name=name)
    if row is not None:
        return row
    row = AccountRow(tenant_id=tenant_id, kind=kind, name=name, members=[])
    row.overdraft, row.allowance, row.period, row.mode = 0, 0, "none", "topup"
    if kind == "user" and defaults is not None:
        row.overdraft, row.allowance = defaults.overdraft, defaults.allowance
        row.period, row.mode = defaults.period, defaults.mode
    try:
        with db.begin_nested():
            db.add(row)
    except IntegrityError:
        return get(db, tenant_id=tenant_id, kind=kind, name=name)
    return row


def system(db: Session, *, tenant_id: str, name: str) -> AccountRow:
    return ensure(db, tenant_id=tenant_id, kind=SYSTEM, name=name)


def save_account(
    db: Session,
    *,
    tenant_id: str,
    kind: str,
    name: str,
    overdraft: int | None = None,
    allowance: int | None = None,
    period: str | None = None,
    mode: str | None = None,
    members: list[str] | None = None,
) -> AccountRow:
    """Create or change a user, group or shared account (None: unchanged)."""
    prices.choice(kind, KINDS, "kind")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("name must be 1-200 characters", field="name")
    if kind == "shared" and name != "shared":
        raise InvalidRequest("the tenant's shared account is named 'shared'", field="name")
    defaults = prices.settings_of(db, tenant_id=tenant_id)
    if defaults is None:
        raise Conflict("accounting is off for this tenant: set its currency first")
    row = ensure(db, tenant_id=tenant_id, kind=kind, name=name, defaults=defaults)
    if overdraft is not None:
        row.overdraft = prices.amount(overdraft, "overdraft")
    if allowance is not None:
        row.allowance = prices.amount(allowance, "allowance")
    if period is not None:
        row.period = prices.choice(period, prices.PERIODS, "period")
    if mode is not None:
        row.mode = prices.choice(mode, prices.MODES, "mode")
    if members is not None:
        if kind != "group":
            raise InvalidRequest("only a group account has members", field="members")
        row.members = sorted({m.strip() for m in members if m.strip()})
    db.flush()
    return row


def list_accounts(db: Session, *, tenant_id: str, kind: str | None = None) -> list[AccountRow]:
    query = select(AccountRow).where(AccountRow.tenant_id == tenant_id)
    query = query.where(AccountRow.kind == kind) if kind else query.where(AccountRow.kind != SYSTEM)
    return list(db.scalars(query.order_by(AccountRow.kind, AccountRow.name)))


def payers(
    db: Session, *, tenant_id: str, user: str, defaults: AccountingSettingsRow
) -> list[AccountRow]:
    """Who may pay for `user`'s job, in order: their own account, their groups', the
    tenant's shared account (when it exists)."""
    own = ensure(db, tenant_id=tenant_id, kind="user", name=user, defaults=defaults)
    groups = [
        g
        for g in db.scalars(
            select(AccountRow)
            .where(AccountRow.tenant_id == tenant_id, AccountRow.kind == "group")
            .order_by(AccountRow.name)
        )
        if user in (g.members or [])
    ]
    shared = find(db, tenant_id=tenant_id, kind="shared", name="shared")
    return [own, *groups, *([shared] if shared is not None else [])]


# -- balances and transactions ----------------------------------------------------------


def balance(db: Session, account: AccountRow) -> int:
    """The sum of the account's entries: the one source of its balance."""
    total = db.scalar(
        select(func.coalesce(func.sum(LedgerEntryRow.amount), 0)).where(
            LedgerEntryRow.tenant_id == account.tenant_id,
            LedgerEntryRow.account_pk == account.pk,
        )
    )
    return int(total or 0)


def lock(db: Session, account: AccountRow) -> None:
    """Serialize spending from one account (PostgreSQL row lock until commit; SQLite
    has one writer at a time already)."""
    db.execute(select(AccountRow.pk).where(AccountRow.pk == account.pk).with_for_update())


def has_key(db: Session, *, tenant_id: str, key: str) -> bool:
    return (
        db.scalar(
            select(LedgerTransactionRow.pk).where(
                LedgerTransactionRow.tenant_id == tenant_id, LedgerTransactionRow.key == key
            )
        )
        is not None
    )


def post(
    db: Session,
    *,
    tenant_id: str,
    key: str,
    kind: str,
    legs: list[tuple[AccountRow, int]],
    job_id: str | None = None,
    reason: str = "",
    actor: str = "system",
    details: dict[str, Any] | None = None,
) -> LedgerTransactionRow | None:
    """Record one balanced transaction, once per `key`: None when a transaction with
    that key exists (written earlier, or by a concurrent try that won the unique
    constraint). Zero legs are left out; a transaction may have none (a job that
    cost nothing is still marked as charged)."""
    if sum(amount for _, amount in legs) != 0:
        raise Unbalanced(f"transaction {key!r} does not balance")
    if any(account.tenant_id != tenant_id for account, _ in legs):
        raise Unbalanced(f"transaction {key!r} crosses tenants")
    if has_key(db, tenant_id=tenant_id, key=key):
        return None
    row = LedgerTransactionRow(
        tenant_id=tenant_id,
        key=key,
        kind=kind,
        job_id=job_id,
        reason=reason[:500],
        actor=actor[:200],
        details=details or {},
        created_at=utcnow(),
    )
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
            for account, value in legs:
                if value:
                    db.add(
                        LedgerEntryRow(
                            tenant_id=tenant_id,
                            transaction_pk=row.pk,
                            account_pk=account.pk,
                            amount=value,
                        )
                    )
            db.flush()
    except IntegrityError:
        if has_key(db, tenant_id=tenant_id, key=key):
            return None  # another try of the same thing won
        raise
    return row


def transfer(
    db: Session,
    *,
    tenant_id: str,
    key: str,
    kind: str,
    source: AccountRow,
    target: AccountRow,
    value: int,
    **extra: Any,
) -> LedgerTransactionRow | None:
    return post(
        db,
        tenant_id=tenant_id,
        key=key,
        kind=kind,
        legs=[(source, -value), (target, value)],
        **extra,
    )


# -- allowances -------------------------------------------------------------------------


def period_start(period: str, now: datetime) -> datetime | None:
    """The start (UTC midnight) of the allowance period containing `now`."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    return None


def next_start(period: str, start: datetime) -> datetime:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return start + timedelta(days=monthrange(start.year, start.month)[1])


def apply_allowance(db: Session, account: AccountRow, *, now: datetime | None = None) -> int:
    """Give the account its allowance for the current period, once (the transaction key
    names the account and the period): `topup` adds it, `reset` sets the balance to it.
    Answers the amount moved (0 when already given, or none is due)."""
    start = period_start(account.period, now or utcnow())
    if start is None or account.kind == SYSTEM:
        return 0
    key = f"allowance:{account.pk}:{start.date().isoformat()}"
    if has_key(db, tenant_id=account.tenant_id, key=key):
        return 0
    value = account.allowance
    if account.mode == "reset":
        value = account.allowance - balance(db, account)
    funding = system(db, tenant_id=account.tenant_id, name=FUNDING)
    done = transfer(
        db,
        tenant_id=account.tenant_id,
        key=key,
        kind="allowance",
        source=funding,
        target=account,
        value=value,
        reason=f"{account.period} allowance"
        + (", added" if account.mode == "topup" else ", the balance reset to it"),
    )
    return value if done is not None else 0


# -- an administrator's movements ------------------------------------------------------


def top_up(
    db: Session, *, tenant_id: str, account: AccountRow, value: int, actor: str, reason: str
) -> LedgerTransactionRow:
    """Money paid in (a cash desk, a voucher): funding → account."""
    if prices.amount(value, "amount") == 0:
        raise InvalidRequest("amount must be more than zero", field="amount")
    return _admin_move(db, tenant_id, account, value, "topup", actor, reason)


def adjust(
    db: Session, *, tenant_id: str, account: AccountRow, value: int, actor: str, reason: str
) -> LedgerTransactionRow:
    """A manual correction, either way, with its reason."""
    if prices.amount(value, "amount", signed=True) == 0:
        raise InvalidRequest("amount must not be zero", field="amount")
    return _admin_move(db, tenant_id, account, value, "adjust", actor, reason)


def _admin_move(
    db: Session,
    tenant_id: str,
    account: AccountRow,
    value: int,
    kind: str,
    actor: str,
    reason: str,
) -> LedgerTransactionRow:
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a reason is required", field="reason")
    funding = system(db, tenant_id=tenant_id, name=FUNDING)
    row = transfer(
        db,
        tenant_id=tenant_id,
        key=f"{kind}:{secrets.token_hex(12)}",
        kind=kind,
        source=funding,
        target=account,
        value=value,
        reason=reason,
        actor=actor,
    )
    assert row is not None  # a fresh random key
    events.audited(
        tenant_id=tenant_id,
        actor=actor,
        action=kind,
        account=f"{account.kind}:{account.name}",
        amount=value,
        reason=reason,
    )
    return row


@dataclass(frozen=True)
class Holding:
    """An account a user may pay with, and its balance now."""

    account: AccountRow
    balance: int


def holdings(db: Session, *, tenant_id: str, user: str) -> list[Holding]:
    """What `user` may pay with (`payers`, allowances given), with balances; [] when
    accounting is off for the tenant."""
    defaults = prices.settings_of(db, tenant_id=tenant_id)
    if defaults is None:
        return []
    found = []
    for account in payers(db, tenant_id=tenant_id, user=user, defaults=defaults):
        apply_allowance(db, account)
        found.append(Holding(account, balance(db, account)))
    return found


@dataclass(frozen=True)
class Line:
    """One entry of an account's statement."""

    at: datetime
    kind: str
    amount: int
    job_id: str | None
    reason: str
    actor: str


def statement(db: Session, account: AccountRow, *, limit: int = 100) -> list[Line]:
    """The account's latest entries, newest first."""
    rows = db.execute(
        select(LedgerTransactionRow, LedgerEntryRow.amount)
        .join(LedgerEntryRow, LedgerEntryRow.transaction_pk == LedgerTransactionRow.pk)
        .where(
            LedgerEntryRow.tenant_id == account.tenant_id,
            LedgerEntryRow.account_pk == account.pk,
        )
        .order_by(LedgerTransactionRow.pk.desc())
        .limit(max(1, min(limit, 1000)))
    ).all()
    return [
        Line(tx.created_at, tx.kind, int(value), tx.job_id, tx.reason, tx.actor)
        for tx, value in rows
    ]


def account_of(db: Session, *, tenant_id: str, kind: str, name: str) -> AccountRow:
    """A user, group or shared account of the tenant (the ledger's own are not shown)."""
    if kind not in KINDS:
        raise NotFound(f"unknown account kind {kind!r}", field="kind")
    return get(db, tenant_id=tenant_id, kind=kind, name=name)


def with_balances(db: Session, accounts: list[AccountRow]) -> list[Holding]:
    return [Holding(a, balance(db, a)) for a in accounts]
