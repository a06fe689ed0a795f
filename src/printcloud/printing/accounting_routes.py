"""The accounting API of the print service (issue 18).

- `GET /api/accounting/me`: the caller's accounts and balances (scope `print`);
- `GET /api/accounting/prices`: the tenant's price list (scope `print`);
- the tenant's administrator (scope `admin` and the issuer's `admin` claim):
  `GET|PUT /api/accounting/settings` (a currency turns accounting on),
  `PUT|DELETE /api/accounting/prices`, `GET /api/accounting/accounts`,
  `GET|PUT /api/accounting/accounts/{kind}/{name}`, `POST …/top-up`, `POST …/adjust`
  `GET /api/accounting/jobs/{id}` (what it set aside, was charged and refunded) and
  `POST /api/accounting/jobs/{id}/refund`, each movement with its reason, recorded
  with who made it (`accounting.ledger`, `accounting.charging`).

- `GET /api/accounting/report?by=user|printer|tenant&start=YYYY-MM-DD&end=YYYY-MM-DD`
  (the tenant's administrator): usage for the period, as JSON or (`format=csv`) CSV.

Amounts are integer minor units of the tenant's currency. The handlers are thin: the
rules are in `accounting/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from printcloud.core.errors import Conflict
from printcloud.core.guard import Principal

from .accounting import charging, ledger, prices, reports
from .accounting.schemas import (
    AccountList,
    AccountRead,
    AccountWrite,
    JobCostRead,
    Movement,
    PriceList,
    PriceRead,
    PriceWrite,
    RefundCreate,
    SettingsRead,
    SettingsUpdate,
    TransactionRead,
)
from .deps import AdminCaller, PrintCaller, RuntimeDep
from .runtime import PrintingRuntime

router = APIRouter(prefix="/api/accounting", tags=["accounting"])
T = TypeVar("T")


def _in(rt: PrintingRuntime, work: Callable[[Session], T]) -> T:
    with rt.db.session() as db:
        return work(db)


def _currency(db: Session, tenant_id: str) -> str:
    row = prices.settings_of(db, tenant_id=tenant_id)
    if row is None:
        raise Conflict("accounting is off for this tenant: set its currency first")
    return row.currency


@router.get("/me", response_model=AccountList)
def my_accounts(rt: RuntimeDep, principal: PrintCaller) -> AccountList:
    """What the caller may pay with, and each balance ([] when accounting is off)."""

    def read(db: Session) -> AccountList:
        row = prices.settings_of(db, tenant_id=principal.tenant_id)
        held = ledger.holdings(db, tenant_id=principal.tenant_id, user=principal.acting_user)
        currency = row.currency if row else ""
        return AccountList(
            currency=row.currency if row else None,
            accounts=[AccountRead.of(h, currency) for h in held],
        )

    return _in(rt, read)


@router.get("/settings", response_model=SettingsRead)
def get_settings(rt: RuntimeDep, principal: AdminCaller) -> SettingsRead:
    return _in(
        rt, lambda db: SettingsRead.of(prices.settings_of(db, tenant_id=principal.tenant_id))
    )


@router.put("/settings", response_model=SettingsRead)
def put_settings(body: SettingsUpdate, rt: RuntimeDep, principal: AdminCaller) -> SettingsRead:
    return _in(
        rt,
        lambda db: SettingsRead.of(
            prices.configure(db, tenant_id=principal.tenant_id, **body.model_dump())
        ),
    )


@router.get("/prices", response_model=PriceList)
def get_prices(rt: RuntimeDep, principal: PrintCaller) -> PriceList:
    def read(db: Session) -> PriceList:
        row = prices.settings_of(db, tenant_id=principal.tenant_id)
        listed = prices.list_prices(db, tenant_id=principal.tenant_id)
        return PriceList(
            currency=row.currency if row else None, prices=[PriceRead.of(p) for p in listed]
        )

    return _in(rt, read)


@router.put("/prices", response_model=PriceRead)
def put_price(body: PriceWrite, rt: RuntimeDep, principal: AdminCaller) -> PriceRead:
    return _in(
        rt,
        lambda db: PriceRead.of(
            prices.set_price(db, tenant_id=principal.tenant_id, **body.model_dump())
        ),
    )


@router.delete("/prices", status_code=204)
def delete_price(
    rt: RuntimeDep,
    principal: AdminCaller,
    printer_id: Annotated[str, Query(max_length=128)] = "",
    media: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    _in(
        rt,
        lambda db: prices.delete_price(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, media=media
        ),
    )
    return Response(status_code=204)


@router.get("/accounts", response_model=AccountList)
def list_accounts(
    rt: RuntimeDep,
    principal: AdminCaller,
    kind: Annotated[str | None, Query(pattern="^(user|group|shared)$")] = None,
) -> AccountList:
    def read(db: Session) -> AccountList:
        currency = _currency(db, principal.tenant_id)
        rows = ledger.list_accounts(db, tenant_id=principal.tenant_id, kind=kind)
        return AccountList(
            currency=currency,
            accounts=[AccountRead.of(h, currency) for h in ledger.with_balances(db, rows)],
        )

    return _in(rt, read)


def _read(db: Session, principal: Principal, kind: str, name: str) -> AccountRead:
    account = ledger.account_of(db, tenant_id=principal.tenant_id, kind=kind, name=name)
    ledger.apply_allowance(db, account)
    return AccountRead.of(
        ledger.Holding(account, ledger.balance(db, account)),
        _currency(db, principal.tenant_id),
        ledger.statement(db, account),
    )


@router.get("/accounts/{kind}/{name}", response_model=AccountRead)
def get_account(kind: str, name: str, rt: RuntimeDep, principal: AdminCaller) -> AccountRead:
    return _in(rt, lambda db: _read(db, principal, kind, name))


@router.put("/accounts/{kind}/{name}", response_model=AccountRead)
def put_account(
    kind: str, name: str, body: AccountWrite, rt: RuntimeDep, principal: AdminCaller
) -> AccountRead:
    def write(db: Session) -> AccountRead:
        ledger.save_account(
            db, tenant_id=principal.tenant_id, kind=kind, name=name, **body.model_dump()
        )
        return _read(db, principal, kind, name)

    return _in(rt, write)


def _move(
    rt: PrintingRuntime, principal: Principal, kind: str, name: str, body: Movement, how: str
) -> AccountRead:
    def write(db: Session) -> AccountRead:
        account = ledger.account_of(db, tenant_id=principal.tenant_id, kind=kind, name=name)
        move = ledger.top_up if how == "topup" else ledger.adjust
        move(
            db,
            tenant_id=principal.tenant_id,
            account=account,
            value=body.amount,
            actor=principal.acting_user,
            reason=body.reason,
        )
        return _read(db, principal, kind, name)

    return _in(rt, write)


@router.post("/accounts/{kind}/{name}/top-up", response_model=AccountRead)
def top_up(
    kind: str, name: str, body: Movement, rt: RuntimeDep, principal: AdminCaller
) -> AccountRead:
    """Money paid in (more than zero), with its reason."""
    return _move(rt, principal, kind, name, body, "topup")


@router.post("/accounts/{kind}/{name}/adjust", response_model=AccountRead)
def adjust(
    kind: str, name: str, body: Movement, rt: RuntimeDep, principal: AdminCaller
) -> AccountRead:
    """A correction either way (not zero), with its reason."""
    return _move(rt, principal, kind, name, body, "adjust")


@router.get("/jobs/{job_id}", response_model=JobCostRead)
def job_cost(job_id: str, rt: RuntimeDep, principal: AdminCaller) -> JobCostRead:
    """What the job set aside, was charged (null until it ended) and was refunded."""

    def read(db: Session) -> JobCostRead:
        cost = charging.job_cost(db, tenant_id=principal.tenant_id, job_id=job_id[:64])
        return JobCostRead(job_id=job_id, **vars(cost))

    return _in(rt, read)


@router.post("/jobs/{job_id}/refund", response_model=TransactionRead)
def refund(
    job_id: str, body: RefundCreate, rt: RuntimeDep, principal: AdminCaller
) -> TransactionRead:
    """Give back part (`amount`) or all of a job's charge to whoever paid it."""
    return _in(
        rt,
        lambda db: TransactionRead.of(
            charging.refund(
                db,
                tenant_id=principal.tenant_id,
                job_id=job_id[:64],
                actor=principal.acting_user,
                reason=body.reason,
                value=body.amount,
            )
        ),
    )


@router.get("/report", response_model=None)
def report(
    rt: RuntimeDep,
    principal: AdminCaller,
    start: Annotated[str, Query(max_length=10)],
    end: Annotated[str, Query(max_length=10)],
    by: Annotated[str, Query(pattern="^(user|printer|tenant)$")] = "user",
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response | dict[str, object]:
    """What was printed and charged from `start` (included) to `end` (excluded)."""

    def read(db: Session) -> tuple[list[reports.UsageRow], str]:
        currency = _currency(db, principal.tenant_id)
        rows = reports.usage(
            db,
            tenant_id=principal.tenant_id,
            start=reports.parse_day(start, "start"),
            end=reports.parse_day(end, "end"),
            by=by,
        )
        return rows, currency

    rows, currency = _in(rt, read)
    if format == "csv":
        name = f"usage-{by}-{start}-{end}.csv"
        return Response(
            reports.csv_text(rows, by=by, currency=currency),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return {
        "currency": currency,
        "by": by,
        "start": start,
        "end": end,
        "rows": [vars(r) | {"net": r.net} for r in rows],
    }
