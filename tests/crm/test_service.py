"""The CRM's service layer on SQLite and PostgreSQL: typed values, the filter language
(SQL and Python agreeing), CSV import, batch jobs, runs, the sealed docgen key and
tenant isolation."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from printcloud.crm import service
from printcloud.crm.models import BatchRunRow, DocgenLinkRow
from printcloud.crm.service import csv_import

BOX = SecretBox([b"test instance secret"])
FIELDS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "qty", "type": "integer"},
    {"name": "amount", "type": "decimal"},
    {"name": "due", "type": "date"},
    {"name": "paid", "type": "boolean"},
]


def new_tenant() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
def db(crm_db: Database) -> Iterator[Session]:
    with crm_db.session() as session:
        yield session


def invoices(db: Session, tenant: str, rows: list[dict[str, Any]] | None = None) -> None:
    service.create_record_set(db, tenant_id=tenant, name="invoices", fields=FIELDS)
    for data in rows if rows is not None else SAMPLE:
        service.add_record(db, tenant_id=tenant, record_set="invoices", data=data)


SAMPLE = [
    {"name": "Acme", "qty": 3, "amount": "120.50", "due": "2025-01-31", "paid": True},
    {"name": "Globex", "qty": 10, "amount": "99.99", "due": "2025-02-28", "paid": False},
    {"name": "Initech 100%", "qty": -2, "amount": "1000", "due": "2024-12-01", "paid": False},
    {"name": "Umbrella", "amount": "0.5", "paid": True},
    {"name": "acme_west", "qty": 3, "due": "2025-01-31"},
]


def names(result: service.QueryResult) -> list[str]:
    return [r.data["name"] for r in result.records]


# -- typed values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "given", "stored"),
    [
        ("string", "x", "x"),
        ("integer", "42", 42),
        ("integer", " -7 ", -7),
        ("integer", 5.0, 5),
        ("decimal", "12.50", "12.50"),
        ("decimal", 3, "3"),
        ("decimal", "-.5", "-0.5"),
        ("date", "2025-02-28", "2025-02-28"),
        ("boolean", "Yes", True),
        ("boolean", 0, False),
    ],
)
def test_values_are_stored_by_type(kind: str, given: Any, stored: Any) -> None:
    assert service.coerce(kind, given) == stored


@pytest.mark.parametrize(
    ("kind", "given"),
    [
        ("string", 12),
        ("integer", "1.5"),
        ("integer", True),
        ("integer", "9" * 25),
        ("decimal", "abc"),
        ("decimal", "1e5"),
        ("decimal", "NaN"),
        ("decimal", False),
        ("date", "2025-02-30"),
        ("date", "31/01/2025"),
        ("boolean", "maybe"),
    ],
)
def test_bad_values_are_refused(kind: str, given: Any) -> None:
    with pytest.raises(ValueError):
        service.coerce(kind, given)


def test_a_bad_decimal_names_the_field(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    with pytest.raises(InvalidRequest) as err:
        service.add_record(
            db, tenant_id=tenant, record_set="invoices", data={"name": "A", "amount": "abc"}
        )
    assert err.value.field == "data.amount"
    assert "'amount'" in err.value.description and '"abc"' in err.value.description
    with pytest.raises(InvalidRequest) as err:
        service.add_record(db, tenant_id=tenant, record_set="invoices", data={"nme": "A"})
    assert err.value.field == "data.nme"
    with pytest.raises(InvalidRequest) as err:
        service.add_record(db, tenant_id=tenant, record_set="invoices", data={"qty": 1})
    assert err.value.field == "data.name" and "required" in err.value.description


def test_record_set_fields_are_checked(db: Session) -> None:
    tenant = new_tenant()
    bad = [
        ([], "fields"),
        ([{"name": "1st", "type": "string"}], "fields.0.name"),
        ([{"name": "a", "type": "money"}], "fields.0.type"),
        ([{"name": "a"}, {"name": "A"}], "fields.1.name"),
    ]
    for fields, where in bad:
        with pytest.raises(InvalidRequest) as err:
            service.create_record_set(db, tenant_id=tenant, name="x", fields=fields)
        assert err.value.field == where
    with pytest.raises(InvalidRequest) as err:
        service.create_record_set(db, tenant_id=tenant, name="bad name", fields=FIELDS)
    assert err.value.field == "name"
    service.create_record_set(db, tenant_id=tenant, name="x", fields=FIELDS)
    with pytest.raises(Conflict):
        service.create_record_set(db, tenant_id=tenant, name="x", fields=FIELDS)


def test_update_and_delete_records(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    row = service.add_record(
        db, tenant_id=tenant, record_set="invoices", data={"name": "A", "amount": 5}
    )
    assert row.data == {"name": "A", "amount": "5"}
    row = service.update_record(
        db,
        tenant_id=tenant,
        record_set="invoices",
        record_id=row.record_id,
        data={"name": "B", "paid": "true", "due": None},
    )
    assert row.data == {"name": "B", "paid": True}
    service.delete_record(db, tenant_id=tenant, record_set="invoices", record_id=row.record_id)
    with pytest.raises(NotFound):
        service.get_record(db, tenant_id=tenant, record_set="invoices", record_id=row.record_id)


# -- the filter language ------------------------------------------------------------------


CASES: list[tuple[list[dict[str, Any]], set[str]]] = [
    ([{"field": "name", "op": "eq", "value": "Acme"}], {"Acme"}),
    ([{"field": "name", "op": "contains", "value": "ACME"}], {"Acme", "acme_west"}),
    ([{"field": "name", "op": "contains", "value": "100%"}], {"Initech 100%"}),
    ([{"field": "name", "op": "contains", "value": "_"}], {"acme_west"}),
    ([{"field": "qty", "op": "gt", "value": 2}], {"Acme", "Globex", "acme_west"}),
    ([{"field": "qty", "op": "le", "value": "3"}], {"Acme", "Initech 100%", "acme_west"}),
    ([{"field": "qty", "op": "ne", "value": 3}], {"Globex", "Initech 100%", "Umbrella"}),
    ([{"field": "qty", "op": "eq", "value": None}], {"Umbrella"}),
    (
        [{"field": "qty", "op": "ne", "value": None}],
        {"Acme", "Globex", "Initech 100%", "acme_west"},
    ),
    # decimals compare as numbers, not as text ("1000" > "99.99")
    ([{"field": "amount", "op": "gt", "value": "100"}], {"Acme", "Initech 100%"}),
    ([{"field": "amount", "op": "lt", "value": 1}], {"Umbrella"}),
    ([{"field": "amount", "op": "eq", "value": "120.5"}], {"Acme"}),
    ([{"field": "due", "op": "lt", "value": "2025-01-31"}], {"Initech 100%"}),
    ([{"field": "due", "op": "ge", "value": "2025-01-31"}], {"Acme", "Globex", "acme_west"}),
    ([{"field": "paid", "op": "eq", "value": True}], {"Acme", "Umbrella"}),
    ([{"field": "paid", "op": "ne", "value": "true"}], {"Globex", "Initech 100%", "acme_west"}),
    (
        [
            {"field": "paid", "op": "eq", "value": False},
            {"field": "amount", "op": "ge", "value": "99.99"},
        ],
        {"Globex", "Initech 100%"},
    ),
]


@pytest.mark.parametrize(("filters", "expected"), CASES)
def test_filters_in_sql_and_in_python_agree(
    db: Session, filters: list[dict[str, Any]], expected: set[str]
) -> None:
    tenant = new_tenant()
    invoices(db, tenant)
    invoices_of_other = new_tenant()
    invoices(db, invoices_of_other)  # the same data in another tenant: never counted
    for in_python in (False, True):
        result = service.query_records(
            db, tenant_id=tenant, record_set="invoices", filters=filters, in_python=in_python
        )
        assert set(names(result)) == expected, (in_python, filters)
        assert result.total == len(expected)


def test_order_and_pages(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant)
    by_amount = service.query_records(
        db, tenant_id=tenant, record_set="invoices", order=["-amount"]
    )
    assert names(by_amount) == ["Initech 100%", "Acme", "Globex", "Umbrella", "acme_west"]
    for in_python in (False, True):
        result = service.query_records(
            db,
            tenant_id=tenant,
            record_set="invoices",
            order="-due,name",
            in_python=in_python,
        )
        assert names(result) == ["Globex", "Acme", "acme_west", "Initech 100%", "Umbrella"]
    first = service.query_records(
        db, tenant_id=tenant, record_set="invoices", order=["qty"], limit=2
    )
    assert names(first) == ["Initech 100%", "Acme"] and first.next_offset == 2
    last = service.query_records(
        db, tenant_id=tenant, record_set="invoices", order=["qty"], limit=2, offset=4
    )
    assert names(last) == ["Umbrella"] and last.next_offset is None and last.total == 5


@pytest.mark.parametrize(
    ("filters", "order", "where"),
    [
        ([{"field": "nope", "op": "eq", "value": 1}], None, "filters.0.field"),
        ([{"field": "qty", "op": "like", "value": 1}], None, "filters.0.op"),
        ([{"field": "qty", "op": "eq", "value": "ten"}], None, "filters.0.value"),
        ([{"field": "amount", "op": "gt", "value": "abc"}], None, "filters.0.value"),
        ([{"field": "qty", "op": "contains", "value": "1"}], None, "filters.0.op"),
        ([{"field": "paid", "op": "lt", "value": True}], None, "filters.0.op"),
        ([{"field": "qty", "op": "gt"}], None, "filters.0.value"),
        ("qty>1", None, "filters"),
        (None, ["-nope"], "order.0"),
    ],
)
def test_bad_queries_name_the_field(db: Session, filters: Any, order: Any, where: str) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    with pytest.raises(InvalidRequest) as err:
        service.query_records(
            db, tenant_id=tenant, record_set="invoices", filters=filters, order=order
        )
    assert err.value.field == where


# -- CSV import ------------------------------------------------------------------------------


def test_csv_import_infers_types(db: Session) -> None:
    tenant = new_tenant()
    text_csv = (
        "\ufeffnumber,customer,total,due,paid,note\r\n"
        "1001,Acme,120.50,2025-01-31,yes,\r\n"
        '1002,"Globex, Inc.",99,2025-02-28,no,"two\nlines"\r\n'
        "\r\n"
        "1003,Initech,7.25,2025-03-01,no,x\r\n"
    )
    result = service.import_csv(db, tenant_id=tenant, record_set="invoices", text=text_csv)
    assert result.created and result.imported == 3
    kinds = {f["name"]: f["type"] for f in result.record_set.fields}
    assert kinds == {
        "number": "integer",
        "customer": "string",
        "total": "decimal",
        "due": "date",
        "paid": "boolean",
        "note": "string",
    }
    rows = service.query_records(
        db, tenant_id=tenant, record_set="invoices", order=["number"]
    ).records
    assert rows[1].data == {
        "number": 1002,
        "customer": "Globex, Inc.",
        "total": "99",
        "due": "2025-02-28",
        "paid": False,
        "note": "two\nlines",
    }
    assert "note" not in rows[0].data  # an empty cell is no value


def test_csv_import_reports_every_bad_row_and_imports_nothing(db: Session) -> None:
    tenant = new_tenant()
    service.create_record_set(
        db,
        tenant_id=tenant,
        name="invoices",
        fields=[
            {"name": "number", "type": "integer", "required": True},
            {"name": "total", "type": "decimal"},
            {"name": "due", "type": "date"},
        ],
    )
    text_csv = (
        "number,total,due\n"
        "1,10.00,2025-01-01\n"  # line 2: good
        "2,abc,2025-01-02\n"  # line 3: bad decimal
        '3,"1\n2",2025-01-03\n'  # lines 4-5: a quoted value over two lines, bad
        "4,5\n"  # line 6: too few values
        "x,1,2025-13-01\n"  # line 7: two bad values
        ",1,2025-01-01\n"  # line 8: required number missing
    )
    with pytest.raises(service.ImportRejected) as err:
        service.import_csv(db, tenant_id=tenant, record_set="invoices", text=text_csv)
    problems = [(e.line, e.field) for e in err.value.errors]
    assert problems == [
        (3, "total"),
        (4, "total"),
        (6, None),
        (7, "number"),
        (7, "due"),
        (8, "number"),
    ]
    assert err.value.total == 6
    assert "line 3, total" in err.value.description and "nothing was imported" in (
        err.value.description
    )
    assert "abc" in str(err.value.errors[0])
    assert (
        service.count_records(db, service.get_record_set(db, tenant_id=tenant, name="invoices"))
        == 0
    )


def test_csv_import_refuses_a_new_set_entirely(db: Session) -> None:
    tenant = new_tenant()
    with pytest.raises(service.ImportRejected) as err:
        service.import_csv(
            db,
            tenant_id=tenant,
            record_set="people",
            text="name,age:integer\nAnn,31\nBob,old\n",
        )
    assert [(e.line, e.field) for e in err.value.errors] == [(3, "age")]
    with pytest.raises(NotFound):
        service.get_record_set(db, tenant_id=tenant, name="people")


def test_csv_header_problems(db: Session) -> None:
    tenant = new_tenant()
    for header, field in [
        ("name,name\n", "name"),
        ("name,2nd\n", "2nd"),
        ("name,age:money\n", "age"),
    ]:
        with pytest.raises(service.ImportRejected) as err:
            service.import_csv(db, tenant_id=tenant, record_set="p", text=header + "a,b\n")
        assert err.value.errors[0].line == 1 and err.value.errors[0].field == field
    with pytest.raises(InvalidRequest, match="empty"):
        service.import_csv(db, tenant_id=tenant, record_set="p", text="")
    with pytest.raises(NotFound):
        service.import_csv(db, tenant_id=tenant, record_set="p", text="a\n1\n", create_fields=False)


def test_csv_into_an_existing_set(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant)
    with pytest.raises(service.ImportRejected) as err:
        service.import_csv(
            db,
            tenant_id=tenant,
            record_set="invoices",
            text="name;region\nA;north\n",
            create_fields=False,
        )
    assert (err.value.errors[0].line, err.value.errors[0].field) == (1, "region")
    with pytest.raises(service.ImportRejected) as err:
        service.import_csv(
            db, tenant_id=tenant, record_set="invoices", text="name;qty:string\nA;1\n"
        )
    assert "integer" in err.value.errors[0].message
    result = service.import_csv(
        db, tenant_id=tenant, record_set="invoices", text="name;region;qty\nA;north;4\n"
    )
    assert result.added_fields == ["region"] and result.imported == 1
    assert service.count_records(db, result.record_set) == len(SAMPLE) + 1
    result = service.import_csv(
        db,
        tenant_id=tenant,
        record_set="invoices",
        text="name\tpaid\nZ\ttrue\n",
        replace=True,
    )
    assert result.replaced == len(SAMPLE) + 1
    assert [
        r.data for r in service.query_records(db, tenant_id=tenant, record_set="invoices").records
    ] == [{"name": "Z", "paid": True}]


def test_csv_limits(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = new_tenant()
    monkeypatch.setattr(csv_import, "MAX_CSV_ROWS", 3)
    with pytest.raises(InvalidRequest, match="at most 3 rows"):
        service.import_csv(db, tenant_id=tenant, record_set="p", text="a\n1\n2\n3\n4\n")
    monkeypatch.setattr(csv_import, "MAX_CSV_BYTES", 10)
    with pytest.raises(PayloadTooLarge):
        service.import_csv(db, tenant_id=tenant, record_set="p", text="a\n" + "1\n" * 10)
    with pytest.raises(InvalidRequest, match="NUL"):
        service.import_csv(db, tenant_id=tenant, record_set="p", text="a\n\x00\n")


# -- batch jobs ------------------------------------------------------------------------------


NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def spec(**changes: Any) -> service.JobSpec:
    values: dict[str, Any] = {
        "name": "Nightly invoices",
        "start_at": datetime(2025, 3, 2, 2, 30),  # local time in `timezone`
        "timezone": "Europe/Paris",
        "recurrence": "daily",
        "printer_id": "printer-1",
        "form": "invoice",
        "record_set": "invoices",
        "filters": [{"field": "paid", "op": "eq", "value": "no"}],
        "order": ["-amount"],
        "limit": 500,
    }
    values.update(changes)
    return service.JobSpec(**values)


def test_a_daily_job_and_its_next_runs(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    job = service.create_job(db, tenant_id=tenant, spec=spec(), by="admin", now=NOW)
    assert job.start_at == datetime(2025, 3, 2, 1, 30, tzinfo=UTC)  # 02:30 in Paris (CET)
    assert job.filters == [{"field": "paid", "op": "eq", "value": False}]
    assert service.schedule_cron(job) == "0 30 2 * * *"
    assert service.next_run(job, now=NOW) == datetime(2025, 3, 2, 1, 30, tzinfo=UTC)
    # after the switch to summer time, 02:30 does not exist on 30 March; then CEST
    later = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)
    assert service.next_run(job, now=later) == datetime(2025, 4, 11, 0, 30, tzinfo=UTC)
    job = service.set_paused(db, tenant_id=tenant, job_id=job.job_id, paused=True, by="admin")
    assert service.next_run(job, now=NOW) is None


def test_weekly_once_and_cron_jobs(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    weekly = service.create_job(
        db,
        tenant_id=tenant,
        spec=spec(name="w", recurrence="weekly", timezone="UTC"),
        by="a",
        now=NOW,
    )
    assert service.schedule_cron(weekly) == "0 30 2 * * 0"  # 2 March 2025 is a Sunday
    assert service.next_run(weekly, now=NOW + timedelta(days=1)) == datetime(
        2025, 3, 9, 2, 30, tzinfo=UTC
    )
    once = service.create_job(
        db,
        tenant_id=tenant,
        spec=spec(name="o", recurrence="once", start_at=NOW + timedelta(hours=1)),
        by="a",
        now=NOW,
    )
    assert service.schedule_cron(once) is None
    assert service.next_run(once, now=NOW) == NOW + timedelta(hours=1)
    assert service.next_run(once, now=NOW + timedelta(hours=2)) is None
    cron = service.create_job(
        db,
        tenant_id=tenant,
        spec=spec(name="c", recurrence="cron", cron="  */15   * * * 1-5 ", timezone="UTC"),
        by="a",
        now=NOW,
    )
    assert cron.cron == "*/15 * * * 1-5"
    # 1 March 2025 is a Saturday: the next weekday quarter-hour is Monday 00:00
    assert service.next_run(cron, now=NOW) == datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
    six = service.create_job(
        db,
        tenant_id=tenant,
        spec=spec(name="s", recurrence="cron", cron="30 0 3 * * *"),
        by="a",
        now=NOW,
    )
    assert service.schedule_cron(six) == "30 0 3 * * *"
    assert [j.name for j in service.list_jobs(db, tenant_id=tenant)] == ["c", "o", "s", "w"]


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"name": "  "}, "name"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"recurrence": "hourly"}, "recurrence"),
        ({"recurrence": "cron", "cron": None}, "cron"),
        ({"recurrence": "cron", "cron": "61 * * * *"}, "cron"),
        ({"recurrence": "cron", "cron": "* * *"}, "cron"),
        ({"recurrence": "once", "start_at": datetime(2025, 2, 1, tzinfo=UTC)}, "start_at"),
        ({"printer_id": "no spaces"}, "print.printer_id"),
        ({"copies": 0}, "print.copies"),
        ({"form": ""}, "form"),
        ({"record_set": "nope"}, "query.record_set"),
        ({"filters": [{"field": "amount", "op": "gt", "value": "x"}]}, "query.filters.0.value"),
        ({"order": ["-nope"]}, "query.order.0"),
        ({"limit": 0}, "query.limit"),
    ],
)
def test_bad_jobs_name_the_field(db: Session, changes: dict[str, Any], where: str) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    with pytest.raises(InvalidRequest) as err:
        service.create_job(db, tenant_id=tenant, spec=spec(**changes), by="a", now=NOW)
    assert err.value.field == where


def test_job_names_are_unique_per_tenant_and_updates(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    first = service.create_job(db, tenant_id=tenant, spec=spec(), by="a", now=NOW)
    second = service.create_job(db, tenant_id=tenant, spec=spec(name="other"), by="a", now=NOW)
    with pytest.raises(Conflict):
        service.create_job(db, tenant_id=tenant, spec=spec(), by="a", now=NOW)
    with pytest.raises(Conflict):
        service.update_job(db, tenant_id=tenant, job_id=second.job_id, spec=spec(), by="b", now=NOW)
    updated = service.update_job(
        db,
        tenant_id=tenant,
        job_id=first.job_id,
        spec=spec(copies=3, duplex=True, color=False),
        by="b",
        now=NOW,
    )
    assert (updated.copies, updated.duplex, updated.color, updated.updated_by) == (
        3,
        True,
        False,
        "b",
    )
    other = new_tenant()
    invoices(db, other, [])
    service.create_job(db, tenant_id=other, spec=spec(), by="a", now=NOW)  # same name: fine


def test_runs_are_recorded_once_per_tick(db: Session) -> None:
    tenant = new_tenant()
    invoices(db, tenant, [])
    job = service.create_job(db, tenant_id=tenant, spec=spec(), by="a", now=NOW)
    tick = datetime(2025, 3, 2, 1, 30, tzinfo=UTC)
    run, created = service.start_run(db, tenant_id=tenant, job_id=job.job_id, scheduled_at=tick)
    again, created_again = service.start_run(
        db, tenant_id=tenant, job_id=job.job_id, scheduled_at=tick
    )
    assert created and not created_again and again.run_id == run.run_id
    service.add_step(run, step="S1502", detail="batch print requested")
    service.add_step(run, step="S1509", detail="digest answered")
    service.finish_run(run, outcome="suspended", reason="the CRM token was revoked")
    db.flush()
    [(listed, of_job)] = service.list_runs(db, tenant_id=tenant)
    assert of_job.job_id == job.job_id and listed.outcome == "suspended"
    assert [s["step"] for s in listed.steps] == ["S1502", "S1509"]
    with pytest.raises(ValueError):
        service.finish_run(run, outcome="running")
    service.delete_job(db, tenant_id=tenant, job_id=job.job_id)
    db.flush()
    assert db.scalar(select(BatchRunRow).where(BatchRunRow.tenant_id == tenant)) is None


# -- the docgen link ------------------------------------------------------------------------


def test_the_secret_key_is_sealed_and_write_only(db: Session) -> None:
    tenant = new_tenant()
    key = "5f0c7d1e-9a7b-4c1d-8e2f-3a4b5c6d7e8f"
    docgen_tenant = f"1000{secrets.token_hex(3).upper()}"
    row = service.set_docgen_link(
        db,
        tenant_id=tenant,
        docgen_tenant_id=docgen_tenant,
        secret_key=f"  {key} ",
        by="admin",
        box=BOX,
    )
    db.flush()
    raw = db.execute(
        text("SELECT secret_sealed FROM crm_docgen_links WHERE tenant_id = :t"), {"t": tenant}
    ).scalar_one()
    assert key not in raw and BOX.open(raw) == key
    assert row.set_by == "admin"
    creds = service.docgen_credentials(db, tenant_id=tenant, box=BOX)
    assert creds == service.DocgenCredentials(docgen_tenant, key)
    assert key not in repr(creds)
    # one-to-one: another CRM tenant cannot take the same docgen tenant
    with pytest.raises(Conflict):
        service.set_docgen_link(
            db,
            tenant_id=new_tenant(),
            docgen_tenant_id=docgen_tenant,
            secret_key=key,
            by="x",
            box=BOX,
        )
    # the tenant itself may register a new key (docgen rotated it)
    service.set_docgen_link(
        db,
        tenant_id=tenant,
        docgen_tenant_id=docgen_tenant,
        secret_key="0" * 32,
        by="admin2",
        box=BOX,
    )
    assert service.docgen_credentials(db, tenant_id=tenant, box=BOX).secret_key == "0" * 32
    for bad, where in [
        ({"docgen_tenant_id": "a b"}, "docgen_tenant_id"),
        ({"secret_key": "short"}, "secret_key"),
        ({"secret_key": "x" * 20 + " y"}, "secret_key"),
    ]:
        args: dict[str, Any] = {"docgen_tenant_id": "other", "secret_key": key, **bad}
        with pytest.raises(InvalidRequest) as err:
            service.set_docgen_link(db, tenant_id=tenant, by="a", box=BOX, **args)
        assert err.value.field == where
    service.delete_docgen_link(db, tenant_id=tenant)
    with pytest.raises(NotFound):
        service.get_docgen_link(db, tenant_id=tenant)


# -- tenant isolation -----------------------------------------------------------------------


def test_a_tenant_never_reaches_another_tenants_data(db: Session) -> None:
    a, b = new_tenant(), new_tenant()
    invoices(db, a)
    job = service.create_job(db, tenant_id=a, spec=spec(), by="a", now=NOW)
    run, _ = service.start_run(db, tenant_id=a, job_id=job.job_id, scheduled_at=NOW)
    service.set_docgen_link(
        db, tenant_id=a, docgen_tenant_id=f"d{a}", secret_key="k" * 20, by="a", box=BOX
    )
    record = service.query_records(db, tenant_id=a, record_set="invoices").records[0]
    db.flush()

    with pytest.raises(NotFound):
        service.get_record_set(db, tenant_id=b, name="invoices")
    with pytest.raises(NotFound):
        service.query_records(db, tenant_id=b, record_set="invoices")
    with pytest.raises(NotFound):
        service.import_csv(
            db, tenant_id=b, record_set="invoices", text="name\nx\n", create_fields=False
        )
    # B's own set of the same name: A's records stay out of it
    invoices(db, b, [])
    assert service.query_records(db, tenant_id=b, record_set="invoices").total == 0
    for call in (
        lambda: service.get_record(
            db, tenant_id=b, record_set="invoices", record_id=record.record_id
        ),
        lambda: service.update_record(
            db, tenant_id=b, record_set="invoices", record_id=record.record_id, data={"name": "x"}
        ),
        lambda: service.delete_record(
            db, tenant_id=b, record_set="invoices", record_id=record.record_id
        ),
        lambda: service.get_job(db, tenant_id=b, job_id=job.job_id),
        lambda: service.set_paused(db, tenant_id=b, job_id=job.job_id, paused=True, by="b"),
        lambda: service.delete_job(db, tenant_id=b, job_id=job.job_id),
        lambda: service.list_runs(db, tenant_id=b, job_id=job.job_id),
        lambda: service.start_run(db, tenant_id=b, job_id=job.job_id, scheduled_at=NOW),
        lambda: service.get_docgen_link(db, tenant_id=b),
        lambda: service.docgen_credentials(db, tenant_id=b, box=BOX),
    ):
        with pytest.raises(NotFound):
            call()
    assert service.list_jobs(db, tenant_id=b) == []
    assert service.list_runs(db, tenant_id=b) == []
    assert [rs.name for rs, _ in service.list_record_sets(db, tenant_id=b)] == ["invoices"]
    assert dict((rs.name, n) for rs, n in service.list_record_sets(db, tenant_id=a)) == {
        "invoices": len(SAMPLE)
    }
    # deleting B's set leaves A's alone
    service.delete_record_set(db, tenant_id=b, name="invoices")
    assert service.query_records(db, tenant_id=a, record_set="invoices").total == len(SAMPLE)
    assert run.tenant_id == a
    assert db.scalar(select(DocgenLinkRow.tenant_id).where(DocgenLinkRow.tenant_id == b)) is None
