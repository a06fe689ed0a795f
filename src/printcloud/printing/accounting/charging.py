"""Charging a print job (issue 18): reserve at intake, charge what printed, release.

- `reserve` (in the intake's transaction, `intake.submit` → `record`): the job's
  estimate (its pages × copies at the tenant's price) moves from the first account
  that can pay (`ledger.payers`: the owner's, their groups', the shared one) to
  `holds`, keyed `reserve:<job ID>`. None afford it: `PaymentRequired` naming the
  balance and the cost, or, when the tenant prefers, the job is held (`Decision.held`)
  and reserves when it is released (`service.release_job`).
- `settle` (the `printing.charge` step after the printer's result, S111, and a cancel):
  one transaction keyed by the job ID moves the reservation out of `holds`: the
  impressions printed (pages printed × copies) to `sales`, the rest back to the payer.
  A job that failed or was cancelled before printing pays nothing. The key's unique
  constraint makes it happen once under retries and executor takeovers.
- `refund`: an administrator gives back part or all of a job's charge, with a reason.

A tenant with no accounting settings is not charged, and nothing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from printcloud.core.errors import Conflict, InvalidRequest, NotFound, PaymentRequired

from ..models import PrintJobRow
from . import events, ledger, prices
from .models import AccountingSettingsRow, AccountRow, LedgerEntryRow, LedgerTransactionRow

#: The job states in which the printer printed something (the rest cost nothing).
PRINTED_STATES = ("printed", "printer_cancelled")
ENDED_STATES = (
    "printed",
    "download_failed",
    "conversion_failed",
    "printer_cancelled",
    "cancelled",
    "expired",
    "failed",
)


def reserve_key(job_id: str) -> str:
    return f"reserve:{job_id}"


@dataclass(frozen=True)
class Decision:
    """What the intake does with a job: go on (reserved, or accounting is off), or hold
    it until its owner can pay (`held`, with the words why)."""

    held: bool = False
    message: str = ""
    cost: int = 0
    #: the job has a reservation (made now, or by an earlier try): it is charged at its end
    reserved: bool = False


def _payer(
    db: Session, *, tenant_id: str, owner: str, cost: int, defaults: AccountingSettingsRow
) -> tuple[AccountRow | None, int, AccountRow]:
    """The first account that can pay `cost` (None if none can), with the owner's own
    account and balance for the refusal's words."""
    candidates = ledger.payers(db, tenant_id=tenant_id, user=owner, defaults=defaults)
    own_balance = 0
    for account in candidates:
        ledger.lock(db, account)
        ledger.apply_allowance(db, account)
        have = ledger.balance(db, account)
        if account is candidates[0]:
            own_balance = have
        if have - cost >= -account.overdraft:
            return account, have, candidates[0]
    return None, own_balance, candidates[0]


def reserve(
    db: Session,
    *,
    tenant_id: str,
    job_id: str,
    owner: str,
    printer_id: str,
    options: dict[str, Any],
    pages: int,
    may_hold: bool = True,
) -> Decision:
    """Reserve the job's estimate, once (`reserve:<job ID>`). `may_hold`: whether the
    tenant's `hold` policy may apply (False on release: the job is held already)."""
    defaults = prices.settings_of(db, tenant_id=tenant_id)
    if defaults is None:
        return Decision()
    if ledger.has_key(db, tenant_id=tenant_id, key=reserve_key(job_id)):
        return Decision(reserved=True)
    estimate = prices.quote(
        db, tenant_id=tenant_id, printer_id=printer_id, options=options, pages=pages
    )
    cost = estimate.cost
    payer, have, own = _payer(db, tenant_id=tenant_id, owner=owner, cost=cost, defaults=defaults)
    if payer is None:
        words = (
            f"your balance is {prices.money(have, defaults.currency)} and this job costs "
            f"{prices.money(cost, defaults.currency)}"
        )
        if own.overdraft:
            words += f" (overdraft {prices.money(own.overdraft, defaults.currency)})"
        if may_hold and defaults.on_insufficient == "hold":
            return Decision(held=True, message=f"held until it can be paid: {words}", cost=cost)
        raise PaymentRequired(f"not enough credit to print: {words}")
    holds = ledger.system(db, tenant_id=tenant_id, name=ledger.HOLDS)
    ledger.transfer(
        db,
        tenant_id=tenant_id,
        key=reserve_key(job_id),
        kind="reserve",
        source=payer,
        target=holds,
        value=cost,
        job_id=job_id,
        reason="estimate reserved at intake",
        details={
            "payer": payer.pk,
            "rate": estimate.rate,
            "impressions": estimate.impressions,
            "cost": cost,
        },
    )
    _warn_if_low(db, defaults, payer, have - cost)
    return Decision(cost=cost, reserved=True)


def _warn_if_low(
    db: Session, defaults: AccountingSettingsRow, account: AccountRow, now_have: int
) -> None:
    if defaults.low_balance and now_have < defaults.low_balance:
        events.low_balance(
            db,
            tenant_id=account.tenant_id,
            account_kind=account.kind,
            account_name=account.name,
            balance=now_have,
            threshold=defaults.low_balance,
            currency=defaults.currency,
        )


def _transaction(db: Session, *, tenant_id: str, key: str) -> LedgerTransactionRow | None:
    return db.scalar(
        select(LedgerTransactionRow).where(
            LedgerTransactionRow.tenant_id == tenant_id, LedgerTransactionRow.key == key
        )
    )


def printed_impressions(job: PrintJobRow) -> int:
    """What the printer printed: distinct pages printed × copies (`device.agent`)."""
    if job.state not in PRINTED_STATES:
        return 0
    copies = max(1, int((job.options or {}).get("copies") or 1))
    return max(0, job.pages_printed) * copies


def settle(db: Session, *, tenant_id: str, job_id: str) -> int | None:
    """Charge the ended job for the impressions printed and release the rest of its
    reservation, in one transaction keyed by the job ID, at the rate it was reserved at:
    the charge, or None when the job has not ended, has no reservation (accepted while
    accounting was off), or was settled already."""
    job = db.get(PrintJobRow, job_id)
    if job is None or job.tenant_id != tenant_id or job.state not in ENDED_STATES:
        return None
    if ledger.has_key(db, tenant_id=tenant_id, key=job_id):
        return None
    held = _transaction(db, tenant_id=tenant_id, key=reserve_key(job_id))
    if held is None:
        # Nothing set aside: accounting was off when it was accepted (a job is charged
        # on the terms it was accepted on), or it was held for credit and never released.
        return None
    defaults = prices.settings_of(db, tenant_id=tenant_id)
    impressions = printed_impressions(job)
    reserved, rate = int(held.details["cost"]), int(held.details["rate"])
    payer = db.get(AccountRow, int(held.details["payer"]))
    assert payer is not None and payer.tenant_id == tenant_id
    cost = rate * impressions
    holds = ledger.system(db, tenant_id=tenant_id, name=ledger.HOLDS)
    sales = ledger.system(db, tenant_id=tenant_id, name=ledger.SALES)
    options = job.options or {}
    done = ledger.post(
        db,
        tenant_id=tenant_id,
        key=job_id,
        kind="charge",
        legs=[(holds, -reserved), (payer, reserved - cost), (sales, cost)],
        job_id=job_id,
        reason=(
            f"{impressions} printed side(s) charged, the rest given back"
            if impressions
            else "nothing printed: all given back"
        ),
        details={
            "payer": payer.pk,
            "owner": job.owner,
            "printer_id": job.printer_id,
            "state": job.state,
            "impressions": impressions,
            "pages": job.pages_printed if job.state in PRINTED_STATES else 0,
            "color": bool(options.get("color", True)),
            "duplex": bool(options.get("duplex", False)),
            "rate": rate,
            "cost": cost,
        },
    )
    if done is None:
        return None
    if defaults is not None and cost > reserved:
        _warn_if_low(db, defaults, payer, ledger.balance(db, payer))
    return cost


def charged(db: Session, *, tenant_id: str, job_id: str) -> int | None:
    """The job's charge (None: not settled), less its refunds."""
    tx = _transaction(db, tenant_id=tenant_id, key=job_id)
    if tx is None:
        return None
    return int(tx.details.get("cost", 0)) - refunded(db, tenant_id=tenant_id, job_id=job_id)


@dataclass(frozen=True)
class JobCost:
    """What a job set aside at intake, what it was charged (None: not settled yet) and
    what was refunded."""

    reserved: int
    charged: int | None
    refunded: int
    impressions: int | None


def job_cost(db: Session, *, tenant_id: str, job_id: str) -> JobCost:
    held = _transaction(db, tenant_id=tenant_id, key=reserve_key(job_id))
    settled = _transaction(db, tenant_id=tenant_id, key=job_id)
    if held is None and settled is None:
        raise NotFound("no accounting for this job", field="job_id")
    return JobCost(
        reserved=int(held.details.get("cost", 0)) if held is not None else 0,
        charged=int(settled.details.get("cost", 0)) if settled is not None else None,
        refunded=refunded(db, tenant_id=tenant_id, job_id=job_id),
        impressions=int(settled.details.get("impressions", 0)) if settled is not None else None,
    )


def refunded(db: Session, *, tenant_id: str, job_id: str) -> int:
    sales = ledger.system(db, tenant_id=tenant_id, name=ledger.SALES)
    total = db.scalar(
        select(func.coalesce(func.sum(LedgerEntryRow.amount), 0))
        .join(LedgerTransactionRow, LedgerEntryRow.transaction_pk == LedgerTransactionRow.pk)
        .where(
            LedgerTransactionRow.tenant_id == tenant_id,
            LedgerTransactionRow.job_id == job_id,
            LedgerTransactionRow.kind == "refund",
            LedgerEntryRow.account_pk == sales.pk,
        )
    )
    return -int(total or 0)


def refund(
    db: Session,
    *,
    tenant_id: str,
    job_id: str,
    actor: str,
    reason: str,
    value: int | None = None,
) -> LedgerTransactionRow:
    """Give back `value` (None: all that is left) of the job's charge to its payer."""
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a reason is required", field="reason")
    tx = _transaction(db, tenant_id=tenant_id, key=job_id)
    if tx is None:
        raise NotFound("no charge for this job", field="job_id")
    left = int(tx.details.get("cost", 0)) - refunded(db, tenant_id=tenant_id, job_id=job_id)
    value = left if value is None else prices.amount(value, "amount")
    if value <= 0 or value > left:
        raise InvalidRequest(
            f"amount must be between 1 and what is left to refund ({left})", field="amount"
        )
    payer = db.get(AccountRow, int(tx.details["payer"]))
    assert payer is not None and payer.tenant_id == tenant_id
    sales = ledger.system(db, tenant_id=tenant_id, name=ledger.SALES)
    count = db.scalar(
        select(func.count()).where(
            LedgerTransactionRow.tenant_id == tenant_id,
            LedgerTransactionRow.job_id == job_id,
            LedgerTransactionRow.kind == "refund",
        )
    )
    done = ledger.transfer(
        db,
        tenant_id=tenant_id,
        key=f"refund:{job_id}:{int(count or 0) + 1}",
        kind="refund",
        source=sales,
        target=payer,
        value=value,
        job_id=job_id,
        reason=reason,
        actor=actor,
    )
    if done is None:
        raise Conflict("another refund of this job was recorded meanwhile: try again")
    events.audited(
        tenant_id=tenant_id,
        actor=actor,
        action="refund",
        account=f"{payer.kind}:{payer.name}",
        amount=value,
        reason=reason,
    )
    return done
