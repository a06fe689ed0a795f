"""Accounting (issue 18) at the service level, on SQLite and PostgreSQL: prices, the
ledger's balances, reserve at intake, charge what printed, release, refund, allowances."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database, migrate
from printcloud.core.egress import EgressPolicy
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, PaymentRequired
from printcloud.printing import service
from printcloud.printing.accounting import charging, ledger, prices
from printcloud.printing.accounting.models import LedgerTransactionRow, PriceRow
from printcloud.printing.models import PrintJobRow
from printcloud.webhooks import service as webhooks_service
from printcloud.webhooks.models import MessageRow
from tests.printing.accounting_world import World


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database, "printcloud:migrations")
    try:
        yield database
    finally:
        database.engine.dispose()


def _price(printer_id: str, media: str, mono: int) -> PriceRow:
    return PriceRow(
        printer_id=printer_id,
        media=media,
        mono=mono,
        color=0,
        duplex_mono=mono - 1,
        duplex_color=0,
    )


def test_the_most_specific_price_applies() -> None:
    rows = [_price("", "", 10), _price("", "A3", 20), _price("p1", "", 30), _price("p1", "A3", 40)]
    rate = prices.rate_for
    assert rate(rows, printer_id="p2", media="A4", color=False, duplex=False) == 10
    assert rate(rows, printer_id="p2", media="A3", color=False, duplex=False) == 20
    assert rate(rows, printer_id="p1", media="A4", color=False, duplex=False) == 30
    assert rate(rows, printer_id="p1", media="A3", color=False, duplex=True) == 39
    assert rate([], printer_id="p1", media="A3", color=True, duplex=False) == 0


def test_money_is_whole_minor_units_and_read_in_words() -> None:
    assert prices.money(1234, "EUR") == "12.34 EUR"
    assert prices.money(-5, "USD") == "-0.05 USD"
    assert prices.money(500, "JPY") == "500 JPY"
    with pytest.raises(InvalidRequest, match="whole number") as bad:
        prices.amount("1.50", "mono")
    assert bad.value.field == "mono"
    with pytest.raises(InvalidRequest, match="negative"):
        prices.amount(-1, "color")


def test_a_job_is_reserved_then_charged_for_what_printed(db: Database) -> None:
    w = World.make(db)
    w.top_up("alice", 100)
    job = w.submit("alice", pages=4, copies=2)  # 8 impressions at 5
    assert w.balance("user", "alice") == 60
    assert w.balance("system", ledger.HOLDS) == 40
    # the printer stopped after 3 pages: 6 impressions printed
    assert w.end(job, "printer_cancelled", printed=3) == 30
    assert w.balance("user", "alice") == 70  # 10 released
    assert w.balance("system", ledger.HOLDS) == 0
    assert w.balance("system", ledger.SALES) == 30
    assert w.ledger_sum() == 0
    assert w.charge(job) is None  # a retry of the step: nothing more
    assert w.transactions(job) == ["reserve", "charge"]


def test_a_job_that_failed_before_printing_costs_nothing(db: Database) -> None:
    w = World.make(db)
    w.top_up("bob", 50)
    job = w.submit("bob", pages=2, color=True)
    assert w.balance("user", "bob") == 10
    assert w.end(job, "conversion_failed") == 0
    assert w.balance("user", "bob") == 50


def test_a_cancel_releases_the_reservation_at_once(db: Database) -> None:
    w = World.make(db)
    w.top_up("carol", 50)
    job = w.submit("carol", pages=2)
    with db.session() as s:
        service.cancel_job(s, tenant_id=w.tenant, job_id=job, by="carol")
    assert w.balance("user", "carol") == 50
    assert w.charge(job) is None  # the workflow's charge step after the cancel: done already


def test_a_job_nobody_can_pay_for_is_refused_with_balance_and_cost(db: Database) -> None:
    w = World.make(db)
    w.top_up("dave", 7)
    with pytest.raises(PaymentRequired) as refused:
        w.submit("dave", pages=2, color=True)
    assert refused.value.status_code == 402
    assert "your balance is 0.07 EUR and this job costs 0.40 EUR" in refused.value.description
    with db.sessions() as s:  # nothing recorded: the intake's transaction rolled back
        assert s.scalar(select(PrintJobRow).where(PrintJobRow.tenant_id == w.tenant)) is None
    assert w.balance("user", "dave") == 7


def test_overdraft_group_and_shared_accounts_pay_in_that_order(db: Database) -> None:
    w = World.make(db)
    with db.session() as s:
        ledger.save_account(s, tenant_id=w.tenant, kind="user", name="erin", overdraft=10)
        ledger.save_account(s, tenant_id=w.tenant, kind="group", name="lab", members=["erin"])
        ledger.save_account(s, tenant_id=w.tenant, kind="shared", name="shared")
        for kind, name, value in (("group", "lab", 20), ("shared", "shared", 100)):
            account = w.account(s, kind, name)
            ledger.top_up(
                s, tenant_id=w.tenant, account=account, value=value, actor="a", reason="r"
            )
    w.submit("erin", pages=2)  # 10: her overdraft
    assert w.balance("user", "erin") == -10
    w.submit("erin", pages=4)  # 20: the lab's
    assert w.balance("group", "lab") == 0
    w.submit("frank", pages=2)  # not in the lab: the shared account
    assert w.balance("shared", "shared") == 90
    assert w.ledger_sum() == 0


def test_a_tenant_may_hold_what_cannot_be_paid_until_it_can(db: Database) -> None:
    w = World.make(db, on_insufficient="hold")
    job_id = service.new_job_id()
    with db.session() as s:
        decision = charging.reserve(
            s,
            tenant_id=w.tenant,
            job_id=job_id,
            owner="gina",
            printer_id="p1",
            options={"color": False},
            pages=2,
        )
    assert decision.held and "0.00 EUR" in decision.message and "0.10 EUR" in decision.message
    with db.session() as s:
        service.create_job(
            s,
            tenant_id=w.tenant,
            printer_id="p1",
            owner="gina",
            client_id="c1",
            title="t",
            source="upload",
            options=service.JobOptions(color=False, hold=True),
            job_id=job_id,
            page_count=2,
        )
        job = s.get(PrintJobRow, job_id)
        assert job is not None
        service.move(s, job, "held", step="SVC001")
    with pytest.raises(PaymentRequired), db.session() as s:
        service.release_job(s, tenant_id=w.tenant, job_id=job_id, by="gina")
    w.top_up("gina", 10)
    with db.session() as s:
        assert service.release_job(s, tenant_id=w.tenant, job_id=job_id, by="gina").state == (
            "accepted"
        )
    assert w.balance("user", "gina") == 0
    assert w.end(job_id, "printed", printed=2) == 10


def test_allowances_top_up_or_reset_once_per_period(db: Database) -> None:
    w = World.make(db)
    monday = datetime(2026, 12, 7, 9, tzinfo=UTC)
    with db.session() as s:
        top = ledger.save_account(
            s, tenant_id=w.tenant, kind="user", name="hal", allowance=100, period="weekly"
        )
        reset = ledger.save_account(
            s,
            tenant_id=w.tenant,
            kind="user",
            name="ivy",
            allowance=100,
            period="monthly",
            mode="reset",
        )
        for account in (top, reset):
            assert ledger.apply_allowance(s, account, now=monday) == 100
            assert ledger.apply_allowance(s, account, now=monday) == 0  # once per period
        ledger.adjust(s, tenant_id=w.tenant, account=reset, value=-30, actor="a", reason="r")
        friday = monday.replace(day=11)
        assert ledger.apply_allowance(s, top, now=friday) == 0
        next_week, next_month = monday.replace(day=14), datetime(2027, 1, 1, tzinfo=UTC)
        assert ledger.apply_allowance(s, top, now=next_week) == 100
        assert ledger.apply_allowance(s, reset, now=next_month) == 30  # back to 100
        assert ledger.balance(s, top) == 200 and ledger.balance(s, reset) == 100


def test_refunds_and_adjustments_need_a_reason_and_stay_within_the_charge(db: Database) -> None:
    w = World.make(db)
    w.top_up("jay", 100)
    job = w.submit("jay", pages=4)
    w.end(job, "printed", printed=4)
    with db.session() as s:
        with pytest.raises(InvalidRequest, match="reason"):
            charging.refund(s, tenant_id=w.tenant, job_id=job, actor="admin", reason=" ")
        charging.refund(s, tenant_id=w.tenant, job_id=job, actor="admin", reason="smudged", value=5)
        with pytest.raises(InvalidRequest, match="left to refund \\(15\\)"):
            charging.refund(s, tenant_id=w.tenant, job_id=job, actor="admin", reason="x", value=16)
        charging.refund(s, tenant_id=w.tenant, job_id=job, actor="admin", reason="jammed")
        assert charging.charged(s, tenant_id=w.tenant, job_id=job) == 0
        with pytest.raises(InvalidRequest, match="reason"):
            ledger.adjust(
                s,
                tenant_id=w.tenant,
                account=w.account(s, "user", "jay"),
                value=5,
                actor="admin",
                reason="",
            )
        refunds = s.scalars(
            select(LedgerTransactionRow).where(
                LedgerTransactionRow.tenant_id == w.tenant, LedgerTransactionRow.kind == "refund"
            )
        ).all()
        assert [(r.actor, r.reason) for r in refunds] == [("admin", "smudged"), ("admin", "jammed")]
    assert w.balance("user", "jay") == 100
    assert w.ledger_sum() == 0


def test_accounting_is_off_without_a_price_list_and_tenants_are_apart(db: Database) -> None:
    off, on = World.make(db, accounting=False), World.make(db)
    job = off.submit("kim", pages=3)
    assert off.end(job, "printed", printed=3) is None
    assert off.ledger_sum() == 0 and off.transactions(job) == []
    on.top_up("kim", 40)
    with db.session() as s:
        assert charging.settle(s, tenant_id=on.tenant, job_id=job) is None  # not its job
        with pytest.raises(NotFound):
            charging.refund(s, tenant_id=on.tenant, job_id=job, actor="a", reason="r")
        with pytest.raises(NotFound):
            ledger.get(s, tenant_id=off.tenant, kind="user", name="kim")
        with pytest.raises(Conflict, match="accounting is off"):
            ledger.save_account(s, tenant_id=off.tenant, kind="user", name="kim")
    assert on.balance("user", "kim") == 40


def test_an_unbalanced_transaction_is_never_recorded(db: Database) -> None:
    w = World.make(db)
    with db.session() as s:
        account = w.account(s, "user", "lee")
        with pytest.raises(ledger.Unbalanced):
            ledger.post(s, tenant_id=w.tenant, key="k", kind="adjust", legs=[(account, 5)])


def test_usage_reports_by_person_printer_and_tenant(db: Database) -> None:
    from datetime import timedelta

    from printcloud.core.db import utcnow
    from printcloud.docgen import usage_report
    from printcloud.printing.accounting import reports
    from tests.helpers.printing import pdf_text

    w = World.make(db)
    w.top_up("ann", 1000)
    w.top_up("=cmd", 1000)
    first = w.submit("ann", pages=4, copies=2, color=True)
    w.end(first, "printer_cancelled", printed=3)  # 6 colour sides at 20
    second = w.submit("=cmd", pages=2)
    w.end(second, "printed", printed=2)  # 2 black-and-white sides at 5
    w.end(w.submit("ann", pages=5), "failed")  # nothing printed
    with db.session() as s:
        charging.refund(s, tenant_id=w.tenant, job_id=first, actor="a", reason="r", value=20)
        now = utcnow()
        start, end = now - timedelta(days=1), now + timedelta(days=1)
        people = reports.usage(s, tenant_id=w.tenant, start=start, end=end, by="user")
        assert [
            (r.key, r.jobs, r.pages, r.impressions, r.color, r.mono, r.cost, r.net) for r in people
        ] == [("ann", 2, 3, 6, 6, 0, 120, 100), ("=cmd", 1, 2, 2, 0, 2, 10, 10)]
        (whole,) = reports.usage(s, tenant_id=w.tenant, start=start, end=end, by="tenant")
        assert (whole.key, whole.jobs, whole.impressions, whole.refunded) == (w.tenant, 3, 8, 20)
        (printer,) = reports.usage(s, tenant_id=w.tenant, start=start, end=end, by="printer")
        assert printer.key == "p1" and printer.net == 110
        before = reports.usage(
            s, tenant_id=w.tenant, start=start - timedelta(days=3), end=start, by="user"
        )
        assert before == []
        with pytest.raises(InvalidRequest) as bad:
            reports.usage(s, tenant_id=w.tenant, start=end, end=start, by="user")
        assert bad.value.field == "start"
    text = reports.csv_text(people, by="user", currency="EUR")
    assert text.splitlines()[1] == "ann,2,3,6,6,0,0,120,20,100,1.00 EUR"
    assert text.splitlines()[2].startswith("'=cmd,")  # never a formula in a spreadsheet
    chart = reports.svg_bars(people, currency="EUR", title="December <2026>")
    assert chart.startswith("<svg") and "December &lt;2026&gt;" in chart and "1.00 EUR" in chart
    # the PDF: these figures, typeset by docgen's Typst usage report (what the page sends)
    data = reports.report_data(
        people, [], by="user", by_label="Person", currency="EUR", start="2026-12-01",
        end="2027-01-01", organisation="Acme #set", batch_note="docgen did not answer",
    )  # fmt: skip
    pdf = usage_report.render_pdf(data)
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "ann 2 3 6 6 0 0 1.20 EUR 0.20 EUR 1.00 EUR" in text
    assert "Total 3 5 8 6 2 0 1.30 EUR 0.20 EUR 1.10 EUR" in text
    assert "Acme #set" in text and "docgen did not answer" in text  # text, never markup


def test_a_low_balance_queues_its_webhook_in_the_charging_transaction(db: Database) -> None:
    """Accounting's one call point for the event (`accounting.events.low_balance`) queues
    `account.low_balance` for the tenant's subscribers, with the balance in minor units."""
    w = World.make(db, low_balance=50)
    with db.session() as s:
        subscription, _secret = webhooks_service.add(
            s,
            tenant_id=w.tenant,
            url="http://127.0.0.1:9/hook",  # never sent: no dispatcher runs in this test
            event_types=["account.low_balance"],
            box=SecretBox([b"0" * 32]),
            egress=EgressPolicy.loopback(),
            by="boss",
        )
    w.top_up("erin", 100)
    w.submit("erin", pages=4)  # 20 reserved: 80 left, above the level
    w.submit("erin", pages=8)  # 40 more: 40 left, below it
    with db.sessions() as s:
        sent = s.scalars(
            select(MessageRow).where(
                MessageRow.tenant_id == w.tenant, MessageRow.event_type == "account.low_balance"
            )
        ).all()
    assert [m.payload["data"] for m in sent] == [
        {
            "account_id": "user:erin",
            "kind": "user",
            "owner": "erin",
            "balance": 40,
            "threshold": 50,
            "currency": "EUR",
        }
    ]
    assert subscription.event_types == ["account.low_balance"]
