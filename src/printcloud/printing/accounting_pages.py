"""Accounting pages of the print service (issue 18), in the shared console.

- `/printing/account`: the signed-in person's balance on each account they may pay
  with (their own, their groups', the shared one), their latest movements and the
  prices, in words;
- `/printing/accounting`: the tenant's administrator (the scope `admin` and the
  issuer's `admin` claim, `pages.manages_queues`) sets the currency, what happens to a
  job nobody can pay for, the allowance of new accounts, the prices, and keeps the
  accounts: allowance, overdraft, group members, top-ups, corrections and refunds, each
  with its reason. Amounts are typed as people write them (`2.50`);
- `/printing/accounting/report`: usage per person, printer or the whole organisation
  for a period, as a table and a bar chart drawn on the server (SVG), and as CSV
  (`/printing/accounting/report.csv`); the period's nightly batch runs (documents,
  pages, why a run was suspended), asked of docgen's API with the administrator's own
  sign-in, and as CSV (`…/batch-runs.csv`); the whole report as a PDF
  (`…/report.pdf`), typeset by docgen (Typst) from the figures this service sends.

Post/redirect/get; a refused form shows the page again with the reason and its status.
Every query filters on the signed-in user's tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core import words
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, PrintcloudError
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf
from printcloud.docgen.client import BatchPrintRefused, DocgenClient

from . import service
from .accounting import charging, ledger, prices, reports
from .deps import RuntimeDep
from .pages import PREFIX, SignedIn, manages_queues, site
from .runtime import PrintingRuntime

router = APIRouter(include_in_schema=False)
log = get_logger("printing.accounting_pages")
#: What a change did, shown once after the redirect (a code here, never user input).
DONE = {
    "settings": "Accounting settings saved.",
    "price": "Price saved.",
    "price-deleted": "Price deleted.",
    "account": "Account saved.",
    "topup": "Money added.",
    "adjust": "Correction recorded.",
    "refund": "Refund recorded.",
}
_EXPIRED = "Your form expired. Reload the page and try again."


@dataclass(frozen=True)
class AccountView:
    kind: str
    name: str
    label: str
    balance: str
    negative: bool
    overdraft: str
    allowance: str
    members: str


def _label(account: ledger.AccountRow, me: str | None = None) -> str:
    if account.kind == "user":
        return "Your own account" if account.name == me else account.name
    if account.kind == "group":
        return f"Group {account.name}"
    return "Shared account of your organisation"


def _view(held: ledger.Holding, currency: str, me: str | None = None) -> AccountView:
    a = held.account
    return AccountView(
        kind=a.kind,
        name=a.name,
        label=_label(a, me),
        balance=prices.money(held.balance, currency),
        negative=held.balance < 0,
        overdraft=prices.money(a.overdraft, currency) if a.overdraft else "None",
        allowance=words.allowance_text(prices.money(a.allowance, currency), a.period, a.mode),
        members=", ".join(a.members or []),
    )


def _price_views(db: Session, tenant_id: str, currency: str) -> list[dict[str, str]]:
    return [
        {
            "printer_id": p.printer_id,
            "media": p.media,
            "where": (f"Printer {p.printer_id}" if p.printer_id else "Any printer")
            + (f", {p.media} paper" if p.media else ", any paper"),
            "mono": prices.money(p.mono, currency),
            "color": prices.money(p.color, currency),
            "duplex_mono": prices.money(p.duplex_mono, currency),
            "duplex_color": prices.money(p.duplex_color, currency),
        }
        for p in prices.list_prices(db, tenant_id=tenant_id)
    ]


def _account_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    me = principal.acting_user
    with rt.db.session() as db:
        settings = prices.settings_of(db, tenant_id=principal.tenant_id)
        if settings is None:
            return {"enabled": False}
        currency = settings.currency
        held = ledger.holdings(db, tenant_id=principal.tenant_id, user=me)
        own = held[0].account
        lines = [
            {
                "at": x.at,
                "what": words.movement_label(x.kind),
                "amount": prices.money(x.amount, currency),
                "job_id": x.job_id,
                "reason": x.reason,
            }
            for x in ledger.statement(db, own, limit=20)
        ]
        return {
            "enabled": True,
            "accounts": [_view(h, currency, me) for h in held],
            "lines": lines,
            "prices": _price_views(db, principal.tenant_id, currency),
            "refuses": settings.on_insufficient == "refuse",
        }


@router.get("/account")
async def account_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    context = await run_in_threadpool(_account_context, rt, principal)
    return site.render(request, "account.html", principal=principal, **context)


# -- the administrator's page ----------------------------------------------------------


def _admin_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    with rt.db.session() as db:
        settings = prices.settings_of(db, tenant_id=tenant_id)
        printers = [p.printer_id for p in service.list_printers(db, tenant_id=tenant_id)]
        if settings is None:
            return {"enabled": False, "settings": None, "printers": printers}
        currency = settings.currency
        rows = ledger.list_accounts(db, tenant_id=tenant_id)
        return {
            "enabled": True,
            "settings": {
                "currency": currency,
                "on_insufficient": settings.on_insufficient,
                "low_balance": prices.money(settings.low_balance, currency).split()[0],
                "allowance": prices.money(settings.allowance, currency).split()[0],
                "period": settings.period,
                "mode": settings.mode,
                "overdraft": prices.money(settings.overdraft, currency).split()[0],
            },
            "printers": printers,
            "prices": _price_views(db, tenant_id, currency),
            "accounts": [_view(h, currency) for h in ledger.with_balances(db, rows)],
        }


async def _admin_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    context = await run_in_threadpool(_admin_context, rt, principal)
    done = DONE.get(request.query_params.get("done", "")) if request.method == "GET" else None
    return site.render(
        request,
        "accounting.html",
        status_code,
        principal=principal,
        error=error,
        notice=done,
        words=words,
        **context,
    )


def _administrators_only(request: Request, principal: Principal) -> Response:
    return site.message(
        request,
        403,
        "Administrators only",
        "Prices and accounts are managed by your organisation's administrators.",
        principal=principal,
        back=True,
    )


@router.get("/accounting")
async def accounting_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    return await _admin_page(request, rt, principal)


async def _change(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    done: str | Callable[[dict[str, str]], str],
    work: Callable[[Session, dict[str, str], str], object],
) -> Response:
    """One form of the administrator's page: `work(db, fields, currency)` in one
    transaction, then back to the page with what it did (`done`, or `done(fields)`)."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=20) as sent:
        fields = {k: str(v).strip() for k, v in sent.items() if isinstance(v, str)}
    if not check_csrf(request, fields.get("csrf")):
        return await _admin_page(request, rt, principal, status_code=400, error=_EXPIRED)

    def in_session() -> None:
        with rt.db.session() as db:
            row = prices.settings_of(db, tenant_id=principal.tenant_id)
            currency = fields.get("currency", "") if row is None else row.currency
            work(db, fields, currency)

    try:
        await run_in_threadpool(in_session)
    except PrintcloudError as exc:
        said = words.form_error(exc.description, exc.field)
        return await _admin_page(request, rt, principal, status_code=exc.status_code, error=said)
    code = done(fields) if callable(done) else done
    response = RedirectResponse(f"{PREFIX}/accounting?done={code}", status_code=303)
    return site.finish(request, response)


def _money(fields: dict[str, str], name: str, currency: str, *, signed: bool = False) -> int:
    return prices.parse_money(fields.get(name, "") or "0", currency, name, signed=signed)


def _optional_money(fields: dict[str, str], name: str, currency: str) -> int | None:
    return _money(fields, name, currency) if fields.get(name) else None


@router.post("/accounting/settings")
async def save_settings(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    def work(db: Session, f: dict[str, str], currency: str) -> None:
        currency = f.get("currency", "").upper() or currency
        if not currency:
            raise InvalidRequest("currency is required to turn accounting on", field="currency")
        prices.configure(
            db,
            tenant_id=principal.tenant_id,
            currency=currency,
            on_insufficient=f.get("on_insufficient") or None,
            low_balance=_money(f, "low_balance", currency),
            allowance=_money(f, "allowance", currency),
            period=f.get("period") or None,
            mode=f.get("mode") or None,
            overdraft=_money(f, "overdraft", currency),
        )

    return await _change(request, rt, principal, "settings", work)


@router.post("/accounting/prices")
async def save_price(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    def work(db: Session, f: dict[str, str], currency: str) -> None:
        prices.set_price(
            db,
            tenant_id=principal.tenant_id,
            printer_id=f.get("printer_id", ""),
            media=f.get("media", ""),
            mono=_money(f, "mono", currency),
            color=_money(f, "color", currency),
            duplex_mono=_optional_money(f, "duplex_mono", currency),
            duplex_color=_optional_money(f, "duplex_color", currency),
        )

    return await _change(request, rt, principal, "price", work)


@router.post("/accounting/prices/delete")
async def delete_price(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    def work(db: Session, f: dict[str, str], currency: str) -> None:
        prices.delete_price(
            db,
            tenant_id=principal.tenant_id,
            printer_id=f.get("printer_id", ""),
            media=f.get("media", ""),
        )

    return await _change(request, rt, principal, "price-deleted", work)


@router.post("/accounting/accounts")
async def save_account(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    def work(db: Session, f: dict[str, str], currency: str) -> None:
        kind = f.get("kind", "user")
        members = f.get("members")
        ledger.save_account(
            db,
            tenant_id=principal.tenant_id,
            kind=kind,
            name=f.get("name", "") if kind != "shared" else "shared",
            overdraft=_optional_money(f, "overdraft", currency),
            allowance=_optional_money(f, "allowance", currency),
            period=f.get("period") or None,
            mode=f.get("mode") or None,
            members=members.replace(",", " ").split() if members else None,
        )

    return await _change(request, rt, principal, "account", work)


@router.post("/accounting/move")
async def move_money(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """A top-up or a correction of one account, with its reason."""

    def work(db: Session, f: dict[str, str], currency: str) -> None:
        kind, _, name = f.get("account", "").partition(":")
        account = ledger.account_of(db, tenant_id=principal.tenant_id, kind=kind, name=name)
        how = f.get("how", "topup")
        if how not in ("topup", "adjust"):
            raise InvalidRequest("choose money paid in or a correction", field="how")
        move = ledger.top_up if how == "topup" else ledger.adjust
        move(
            db,
            tenant_id=principal.tenant_id,
            account=account,
            value=_money(f, "amount", currency, signed=how == "adjust"),
            actor=principal.acting_user,
            reason=f.get("reason", ""),
        )

    return await _change(
        request, rt, principal, lambda f: "adjust" if f.get("how") == "adjust" else "topup", work
    )


@router.post("/accounting/refund")
async def refund(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    def work(db: Session, f: dict[str, str], currency: str) -> None:
        job_id = f.get("job_id", "")[:64]
        if not job_id:
            raise InvalidRequest("the job ID is required", field="job_id")
        if prices.settings_of(db, tenant_id=principal.tenant_id) is None:
            raise Conflict("accounting is off for this organisation")
        charging.refund(
            db,
            tenant_id=principal.tenant_id,
            job_id=job_id,
            actor=principal.acting_user,
            reason=f.get("reason", ""),
            value=_optional_money(f, "amount", currency),
        )

    return await _change(request, rt, principal, "refund", work)


# -- usage reports ------------------------------------------------------------------------

BY_WORDS = {"user": "Person", "printer": "Printer", "tenant": "Whole organisation"}


@dataclass(frozen=True)
class Period:
    by: str
    start: str
    end: str

    @classmethod
    def of(cls, request: Request) -> Period:
        """The report asked for: this month by person unless the query says otherwise."""
        today = utcnow().date()
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        q = request.query_params
        return cls(
            by=q.get("by", "user")[:10],
            start=q.get("start", first.isoformat())[:10],
            end=q.get("end", following.isoformat())[:10],
        )


@dataclass(frozen=True)
class Report:
    rows: list[reports.UsageRow]
    currency: str
    runs: list[reports.BatchRunRow]
    #: Why the batch runs are missing (docgen refused or did not answer), else "".
    batch_note: str = ""
    #: docgen listed only the first runs of the period.
    truncated: bool = False


def _docgen(rt: PrintingRuntime) -> DocgenClient:
    return DocgenClient(f"{rt.settings.public_url}/docgen", http=rt.http)


def _report(rt: PrintingRuntime, principal: Principal, period: Period, token: str | None) -> Report:
    """The period's usage from this service's ledger and, asked of docgen with the
    administrator's own sign-in (`token`), its nightly batch runs; a docgen that cannot
    answer leaves the usage whole and says so where the runs would be."""
    start = reports.parse_day(period.start, "start")
    end = reports.parse_day(period.end, "end")
    with rt.db.sessions() as db:
        row = prices.settings_of(db, tenant_id=principal.tenant_id)
        if row is None:
            raise Conflict("accounting is off for this organisation: set its currency first")
        rows = reports.usage(db, tenant_id=principal.tenant_id, start=start, end=end, by=period.by)
        currency = row.currency
    note, truncated, found = "", False, []
    if token is None:
        note = "Sign in again to see the batch runs."
    else:
        try:
            answer = _docgen(rt).batch_runs(token=token, start=period.start, end=period.end)
            found, truncated = answer.runs, answer.truncated
        except BatchPrintRefused as exc:
            log.warning(
                "no batch runs for the usage report",
                extra={"fields": {"tenant": principal.tenant_id, "status": exc.status}},
            )
            note = f"The batch runs could not be read from document generation: {exc.description}"
    with rt.db.sessions() as db:
        runs = reports.batch_runs(db, tenant_id=principal.tenant_id, runs=found)
    return Report(rows, currency, runs, note, truncated)


def _token(request: Request) -> str | None:
    session = site.session(request)
    return session.access_token if session is not None else None


async def _read_report(
    request: Request, rt: PrintingRuntime, principal: Principal
) -> tuple[Period, Report] | Response:
    """The period the request asks for and its report, for an administrator (the
    downloads'); else the page that says why there is none."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    period = Period.of(request)
    try:
        return period, await run_in_threadpool(_report, rt, principal, period, _token(request))
    except PrintcloudError as exc:
        return site.message(
            request,
            exc.status_code,
            "No report",
            words.form_error(exc.description, exc.field),
            principal=principal,
            back=True,
        )


@router.get("/accounting/report")
async def report_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    period = Period.of(request)
    try:
        report = await run_in_threadpool(_report, rt, principal, period, _token(request))
    except PrintcloudError as exc:
        return site.render(
            request,
            "report.html",
            exc.status_code,
            principal=principal,
            period=period,
            by_words=BY_WORDS,
            error=words.form_error(exc.description, exc.field),
            rows=[],
        )
    currency = report.currency
    title = (
        f"Net cost by {BY_WORDS.get(period.by, period.by).lower()}, {period.start} to {period.end}"
    )
    lines = [
        {
            "key": r.key,
            "jobs": r.jobs,
            "pages": r.pages,
            "impressions": r.impressions,
            "color": r.color,
            "mono": r.mono,
            "duplex": r.duplex,
            "cost": prices.money(r.cost, currency),
            "refunded": prices.money(r.refunded, currency),
            "net": prices.money(r.net, currency),
        }
        for r in report.rows
    ]
    runs = report.runs
    return site.render(
        request,
        "report.html",
        principal=principal,
        period=period,
        by_words=BY_WORDS,
        rows=lines,
        chart=reports.svg_bars(report.rows, currency=currency, title=title),
        csv_query=urlencode({"by": period.by, "start": period.start, "end": period.end}),
        runs=runs,
        batch_note=report.batch_note,
        truncated=report.truncated,
        batch_totals={
            "documents": sum(r.documents for r in runs),
            "pages": sum(r.pages for r in runs),
            "suspended": sum(r.state == "suspended" for r in runs),
        },
    )


@router.get("/accounting/report.csv")
async def report_csv(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    read = await _read_report(request, rt, principal)
    if isinstance(read, Response):
        return read
    period, report = read
    name = f"usage-{period.by}-{period.start}-{period.end}.csv"
    return _download(
        request,
        reports.csv_text(report.rows, by=period.by, currency=report.currency),
        "text/csv; charset=utf-8",
        name,
    )


@router.get("/accounting/batch-runs.csv")
async def batch_runs_csv(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """The period's nightly batch runs, as CSV (beside the usage's own download)."""
    read = await _read_report(request, rt, principal)
    if isinstance(read, Response):
        return read
    period, report = read
    if report.batch_note:  # an empty file would say "no runs", which is not what we know
        return site.message(
            request, 503, "No batch runs", report.batch_note, principal=principal, back=True
        )
    name = f"batch-runs-{period.start}-{period.end}.csv"
    return _download(request, reports.batch_csv_text(report.runs), "text/csv; charset=utf-8", name)


@router.get("/accounting/report.pdf")
async def report_pdf(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """The report as a PDF: the figures sent to docgen, which typesets them (Typst)."""
    read = await _read_report(request, rt, principal)
    if isinstance(read, Response):
        return read
    period, report = read
    token = _token(request)
    data = reports.report_data(
        report.rows,
        report.runs,
        by=period.by,
        by_label=BY_WORDS.get(period.by, period.by),
        currency=report.currency,
        start=period.start,
        end=period.end,
        organisation=principal.tenant_name or principal.tenant_id,
        batch_note=report.batch_note,
    )
    try:
        if token is None:
            raise BatchPrintRefused(401, "invalid_token", "sign in again")
        pdf = await run_in_threadpool(
            partial(_docgen(rt).usage_report_pdf, token=token, report=data)
        )
    except BatchPrintRefused as exc:
        return site.message(
            request,
            502 if exc.status >= 500 else exc.status,
            "No PDF",
            f"Document generation could not typeset the report: {exc.description}",
            principal=principal,
            back=True,
        )
    name = f"usage-{period.by}-{period.start}-{period.end}.pdf"
    return _download(request, pdf, "application/pdf", name)


def _download(request: Request, body: str | bytes, media_type: str, name: str) -> Response:
    response = Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    return site.finish(request, response)
