"""Forms (seed 000, S1519): built-in invoice and statement, uploaded templates, the sandbox."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printcloud.core.errors import InvalidRequest
from printcloud.docgen import forms, sandbox
from printcloud.docgen.forms import (
    BUILTIN_FORMS,
    Form,
    FormError,
    FormRenderer,
    render_tenant_form,
    sample_invoice,
    sample_statement,
    validate_form,
)
from printcloud.docgen.sandbox import FormLimitExceeded, FormProcessPool, Limits
from tests.conftest import require_command
from tests.helpers.docgen import DATA_LOOP, HIDDEN_IMPORT

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def renderer() -> FormRenderer:
    return FormRenderer(compilers_per_form=2)


@pytest.fixture(scope="module")
def children() -> Iterator[FormProcessPool]:
    """Tenant forms' child processes, with the default limits."""
    pool = FormProcessPool(size=2)
    yield pool
    pool.close()


def pdf_text(pdf: bytes) -> str:
    """The PDF's text, pages separated by form feeds (poppler's `pdftotext -layout`)."""
    require_command("pdftotext")
    assert pdf.startswith(b"%PDF-")
    done = subprocess.run(
        ["pdftotext", "-layout", "-enc", "UTF-8", "-", "-"],
        input=pdf,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode("utf-8")


def pdf_pages(pdf: bytes) -> int:
    require_command("pdfinfo")
    done = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True, timeout=60)
    match = re.search(rb"^Pages:\s+(\d+)", done.stdout, re.MULTILINE)
    assert match, done.stdout
    return int(match[1])


def expected_invoice_total(data: dict[str, Any]) -> Decimal:
    """The invoice's total, computed independently of the form: per-line amounts
    rounded half up to the cent, tax on the subtotal rounded the same way."""
    subtotal = sum(
        (
            (Decimal(str(line["quantity"])) * Decimal(str(line["unit_price"]))).quantize(
                CENT, rounding=ROUND_HALF_UP
            )
            for line in data["lines"]
        ),
        Decimal(0),
    )
    tax = (subtotal * Decimal(str(data.get("tax_rate", 0)))).quantize(CENT, rounding=ROUND_HALF_UP)
    return subtotal + tax


def euros(value: Decimal) -> str:
    return f"€{value:,.2f}".replace("€-", "−€")


# -- built-in forms ------------------------------------------------------------


def test_builtin_forms_are_listed_with_their_keys_and_samples() -> None:
    assert BUILTIN_FORMS == ("invoice", "statement")
    invoice = forms.builtin_form("invoice")
    assert invoice.kind == "invoice"
    assert set(invoice.required) <= set(invoice.sample)
    assert invoice.schema == {"type": "object", "required": list(invoice.required)}
    assert "sys.inputs" in invoice.source
    with pytest.raises(InvalidRequest) as caught:
        forms.builtin_form("letter")
    assert caught.value.field == "form"


def test_invoice_shows_customer_lines_and_the_right_total(
    renderer: FormRenderer, caplog: pytest.LogCaptureFixture
) -> None:
    data = sample_invoice(lines=30, seed=7)
    data["customer"]["name"] = "Zoë Ångström & Söhne GmbH"
    data["lines"][3]["description"] = "Special order: 日本語 is not in the font, Ελληνικά is"
    caplog.set_level(logging.WARNING, logger="printcloud.docgen.forms")
    pdf = renderer.render("invoice", data)

    assert pdf_pages(pdf) == 1  # 30 lines fit on one page
    text = pdf_text(pdf)
    assert "Zoë Ångström & Söhne GmbH" in text
    assert data["invoice"]["number"] in text
    for line in data["lines"]:
        if line is not data["lines"][3]:
            assert line["description"] in text
    total = expected_invoice_total(data)
    assert euros(total) in text
    assert "Page 1 of 1" in text
    assert not [r for r in caplog.records if r.name == "printcloud.docgen.forms"]


def test_invoice_amounts_are_exact_and_right_rounded(renderer: FormRenderer) -> None:
    data = sample_invoice(lines=3, seed=1)
    data["lines"] = [
        {"description": "Thirds", "quantity": 3, "unit_price": "0.335"},  # 1.005 -> 1.01
        {"description": "Floats", "quantity": 0.1, "unit_price": 0.2},  # 0.02, not 0.020000…
        {"description": "Credit", "quantity": 1, "unit_price": "-0.50"},
    ]
    data["tax_rate"] = 0.19
    prepared = forms.builtin_form("invoice").prepare(data)
    assert '"amount": "1.01"' in prepared
    assert '"amount": "0.02"' in prepared
    assert '"totals": {"subtotal": "0.53", "tax": "0.10", "total": "0.63"}' in prepared
    text = pdf_text(renderer.render("invoice", data))
    assert "−0.50" in text
    assert "€0.63" in text


def test_long_invoice_repeats_the_table_header_on_every_page(renderer: FormRenderer) -> None:
    data = sample_invoice(lines=150, seed=3)
    pdf = renderer.render("invoice", data)
    pages = pdf_pages(pdf)
    assert pages >= 3
    texts = pdf_text(pdf).split("\f")[:pages]
    for number, page in enumerate(texts, start=1):
        assert "Unit price" in page, f"no table header on page {number}"
        assert f"Page {number} of {pages}" in page
    assert euros(expected_invoice_total(data)) in texts[-1]


def test_other_currencies_and_labels(renderer: FormRenderer) -> None:
    data = sample_invoice(lines=2, seed=5)
    data.update(
        currency="JPY",
        lang="de",
        labels={"invoice": "Rechnung", "total": "Gesamtbetrag"},
        number_format={"group": ".", "decimal": ","},
    )
    data["lines"] = [{"description": "Beratung", "quantity": 2, "unit_price": 12345}]
    data["tax_rate"] = "0.1"
    text = pdf_text(renderer.render("invoice", data))
    assert "RECHNUNG" in text
    assert "Gesamtbetrag" in text
    assert "¥27.159" in text  # 24,690 + 2,469 tax, no minor unit, German grouping


def test_statement_of_500_rows_runs_over_ten_pages_with_headers(renderer: FormRenderer) -> None:
    data = sample_statement(rows=500, seed=11)
    pdf = renderer.render("statement", data)
    pages = pdf_pages(pdf)
    assert pages >= 10
    text = pdf_text(pdf)
    assert f"Page 1 of {pages}" in text
    assert f"Page {pages} of {pages}" in text
    per_page = text.split("\f")[:pages]
    body_pages = [page for page in per_page if "Summary" not in page]
    assert len(body_pages) >= 9
    for page in body_pages:
        assert "Payments" in page and "Balance" in page  # the repeated column header

    opening = charges = payments = Decimal(0)
    for customer in data["customers"]:
        balance = Decimal(customer["opening_balance"])
        opening += balance
        for entry in customer["transactions"]:
            amount = Decimal(entry["amount"])
            balance += amount
            charges += max(amount, Decimal(0))
            payments += max(-amount, Decimal(0))
        assert customer["name"] in text
        assert euros(balance) in text  # each customer's closing balance
    assert euros(opening + charges - payments) in text
    assert euros(charges) in text and euros(payments) in text


def test_bad_data_is_refused_naming_the_field(renderer: FormRenderer) -> None:
    def refused(change: dict[str, Any]) -> InvalidRequest:
        data = sample_invoice(lines=3)
        for path, value in change.items():
            target: Any = data
            *parents, last = path.split(".")
            for key in parents:
                target = target[int(key)] if isinstance(target, list) else target[key]
            if value is KeyError:
                del target[last]
            elif isinstance(target, list):
                target[int(last)] = value
            else:
                target[last] = value
        with pytest.raises(InvalidRequest) as caught:
            renderer.render("invoice", data)
        return caught.value

    assert refused({"customer": KeyError}).field == "customer"
    assert refused({"lines.1.quantity": "three"}).field == "lines[1].quantity"
    assert refused({"lines.0.unit_price": float("nan")}).field == "lines[0].unit_price"
    assert refused({"lines.0.unit_price": "0.0000001"}).field == "lines[0].unit_price"
    assert refused({"lines.2.description": ""}).field == "lines[2].description"
    assert refused({"currency": "euro"}).field == "currency"
    assert refused({"tax_rate": 19}).field == "tax_rate"
    assert refused({"invoice.date": "31/12/2025"}).field == "invoice.date"
    assert refused({"lines.0.description": "\ud800"}).field == "data"  # a lone surrogate
    with pytest.raises(InvalidRequest) as caught:
        renderer.render("statement", {**sample_statement(rows=4, customers=2), "customers": 3})
    assert caught.value.field == "customers"


# -- uploaded forms ------------------------------------------------------------

GOOD = """#let data = json(bytes(sys.inputs.data))
#set text(font: "Libertinus Serif")
= Invoice #data.invoice.number for #data.customer.name
Total: #data.totals.total #data.currency
"""


def test_an_uploaded_form_is_checked_and_then_renders(
    renderer: FormRenderer, children: FormProcessPool
) -> None:
    form = validate_form(GOOD, kind="invoice", name="mine", tenant_id="1000AA")
    assert (form.name, form.kind, form.tenant_id) == ("mine", "invoice", "1000AA")
    assert form.warnings == ()
    assert form.required == forms.builtin_form("invoice").required
    data = sample_invoice(lines=4, seed=9)
    text = pdf_text(render_tenant_form(children, form, data))
    assert data["customer"]["name"] in text
    assert f"Total: {expected_invoice_total(data)} EUR" in text
    # A tenant's form never compiles in this process.
    with pytest.raises(ValueError, match="child process"):
        renderer.render(form, data)
    # Without a kind the data reaches the template as given.
    source = "#let d = json(bytes(sys.inputs.data))\nHello #d.who"
    plain = validate_form(source, sample={"who": "x"})
    assert "Hello Ada" in pdf_text(renderer.render(plain, {"who": "Ada"}))


def test_a_broken_form_is_refused_with_the_compilers_message() -> None:
    with pytest.raises(FormError) as caught:
        validate_form("= Title\n#let total = \n#table(", kind="invoice")
    error = caught.value
    assert isinstance(error, InvalidRequest) and error.status_code == 400
    assert error.field == "source"
    assert (error.line, error.column) == (2, 12)
    assert error.message == "expected expression"
    assert "expected expression (line 2, column 12)" in error.description
    assert "template.typ:2:12" in error.description  # Typst's own diagnostic, our file name
    assert "unclosed delimiter" in error.description
    assert "__typst_py_bytes__" not in error.description

    with pytest.raises(FormError) as caught:
        validate_form("#let d = json(bytes(sys.inputs.data))\n#d.customer.nmae", kind="invoice")
    assert "does not contain key" in caught.value.message
    assert caught.value.line == 2


def test_a_form_cannot_read_server_files(tmp_path: Path, renderer: FormRenderer) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    for path in ("/etc/passwd", str(secret), "../../../../../../etc/passwd", "/proc/self/environ"):
        source = f'#read("{path}")'
        with pytest.raises(FormError) as caught:
            validate_form(source)
        assert "root:" not in caught.value.description
        assert "TOP-SECRET" not in caught.value.description
        assert caught.value.line == 1
        # A form that skipped validation is confined the same way when rendered.
        with pytest.raises(FormError) as caught:
            renderer.render(Form(name="evil", source=source), {})
        assert "TOP-SECRET" not in caught.value.description
    with pytest.raises(FormError) as caught:
        validate_form(f'#image("{secret}")')
    assert "file not found" in caught.value.message
    # The private root leaks nothing either: it is reported as "/".
    assert "printcloud-" not in caught.value.description


def test_package_imports_and_missing_fonts_are_refused() -> None:
    with pytest.raises(FormError) as caught:
        validate_form('#import "@preview/tablex:0.0.8": tablex\nHi')
    assert "cannot import packages" in caught.value.description
    # Built at run time, the import still fails: the trial compile has no route out.
    with pytest.raises(FormError) as caught:
        validate_form('\n#import ("@pre" + "view/tablex:0.0.8"): tablex\nHi')
    assert "cannot import packages" in caught.value.description
    assert caught.value.line == 2
    with pytest.raises(FormError) as caught:
        validate_form('#set text(font: "Comic Sans MS")\nHi')
    assert "unknown font family: comic sans ms" in caught.value.description
    assert "Libertinus Serif" in caught.value.description


HUNGRY = """#let d = json(bytes(sys.inputs.data))
#if sys.inputs.data.contains("TRIGGER") { let s = "x" * 1500000000 }
= Invoice #d.invoice.number
"""


def triggered(seed: int) -> dict[str, Any]:
    data = sample_invoice(lines=3, seed=seed)
    data["customer"]["name"] = "TRIGGER Industries"
    return data


def test_a_package_import_is_refused_by_the_compiler_and_named() -> None:
    # Written so that no text check of the source can see it: the compiler's error decides.
    for source, line in (
        ('#import "\\u{40}preview/cetz:0.3.0": canvas\nHi', 1),
        ('\n#import ("@pre" + "view/cetz:0.3.0"): canvas\nHi', 2),
        ('#import "@local/mine:0.1.0": *\nHi', 1),
    ):
        with pytest.raises(FormError) as caught:
            validate_form(source)
        description = caught.value.description
        assert "forms cannot import packages" in description, description
        assert ("@local/mine:0.1.0" if "local" in source else "@preview/cetz:0.3.0") in description
        assert caught.value.line == line


def test_the_package_download_can_only_reach_a_closed_door_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child's only route out is the proxy it is given (a closed port on loopback in
    production): here a listener of the test's own stands in for it and sees the one
    attempt, which it turns away, so nothing else was contacted (the proxy is asked to
    connect to the registry, which the child never resolves itself)."""
    seen: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)

        def door() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    with conn:
                        seen.append(conn.recv(4096))
                        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=door, daemon=True).start()
        monkeypatch.setattr(sandbox, "NO_ROUTE", f"http://127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(FormError) as caught:
            validate_form('#import "\\u{40}preview/cetz:0.3.0": canvas\nHi')
    assert "forms cannot import packages (@preview/cetz:0.3.0)" in caught.value.description
    assert seen and all(b"packages.typst.org" in request for request in seen), seen


def test_tenant_forms_break_their_limits_on_some_data_only() -> None:
    pool = FormProcessPool(Limits(cpu_seconds=2, memory_mb=512, wall_seconds=120), size=1)
    try:
        ordinary = sample_invoice(lines=3, seed=1)
        forms_ = {
            name: validate_form(source, kind="invoice", name=name, tenant_id="1000AA")
            for name, source in (("loop", DATA_LOOP), ("hidden", HIDDEN_IMPORT), ("hungry", HUNGRY))
        }  # the upload's sample data does not trigger them: all three are accepted
        for form in forms_.values():
            assert render_tenant_form(pool, form, ordinary).startswith(b"%PDF-")

        with pytest.raises(FormLimitExceeded) as caught:
            render_tenant_form(pool, forms_["loop"], triggered(2))
        assert caught.value.limit == "cpu"
        assert caught.value.description == "the form exceeded its 2 s CPU budget"

        with pytest.raises(FormLimitExceeded) as caught:
            render_tenant_form(pool, forms_["hungry"], triggered(3))
        assert caught.value.limit == "memory"
        assert "512 MB memory limit" in caught.value.description

        with pytest.raises(FormError) as caught:
            render_tenant_form(pool, forms_["hidden"], triggered(4))
        assert "forms cannot import packages (@preview/cetz:0.3.0)" in caught.value.description

        # the pool replaced the children that broke a limit: the next document renders
        assert render_tenant_form(pool, forms_["loop"], ordinary).startswith(b"%PDF-")
    finally:
        pool.close()


def test_a_tenant_form_is_stopped_at_its_wall_clock_deadline() -> None:
    pool = FormProcessPool(Limits(cpu_seconds=600, memory_mb=1024, wall_seconds=1), size=1)
    try:
        form = validate_form(DATA_LOOP, kind="invoice", name="loop", tenant_id="1000AA")
        with pytest.raises(FormLimitExceeded) as caught:
            render_tenant_form(pool, form, triggered(5))
        assert caught.value.limit == "time"
        assert caught.value.description == "the form exceeded its 1 s time limit"
        assert pool.busy_pids == []
    finally:
        pool.close()


def test_limits_on_uploaded_forms() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_form("// " + "x" * forms.MAX_TEMPLATE_BYTES)
    assert caught.value.field == "source" and "at most" in caught.value.description
    with pytest.raises(InvalidRequest) as caught:
        validate_form("#for i in range(1000000) [#i #pagebreak()]", timeout=1)
    assert "longer than 1 s" in caught.value.description
    with pytest.raises(InvalidRequest) as caught:
        validate_form(GOOD, kind="invoice", sample={"company": {}})
    assert caught.value.field == "sample"
    with pytest.raises(InvalidRequest):
        validate_form(GOOD, kind="letter")


# -- concurrency and properties ------------------------------------------------


def test_one_renderer_serves_many_threads(renderer: FormRenderer) -> None:
    datasets = [sample_invoice(lines=5, seed=100 + i) for i in range(8)]
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = renderer.render("invoice", datasets[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(datasets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for i, data in enumerate(datasets):
        text = pdf_text(results[i])
        assert data["invoice"]["number"] in text
        assert euros(expected_invoice_total(data)) in text


descriptions = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60
).filter(lambda s: s != "")
line_items = st.lists(
    st.fixed_dictionaries(
        {
            "description": descriptions,
            "quantity": st.one_of(
                st.integers(min_value=0, max_value=10_000),
                st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False),
            ),
            "unit_price": st.decimals(
                min_value=0, max_value=1_000_000, places=2, allow_nan=False
            ).map(str),
        }
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=line_items, tax=st.sampled_from(["0", "0.07", "0.19", "0.2"]))
def test_any_line_items_render_with_the_right_total(
    renderer: FormRenderer, lines: list[dict[str, Any]], tax: str
) -> None:
    data = sample_invoice(lines=0, seed=2)
    data["lines"] = lines
    data["tax_rate"] = tax
    pdf = renderer.render("invoice", data)
    text = pdf_text(pdf)
    assert euros(expected_invoice_total(data)) in text
