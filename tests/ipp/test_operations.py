"""The queue's operations over HTTP (issue 14): who may do what (HTTP Basic against the
tenant's directory, bearer tokens of idp-a, never requesting-user-name), tenant
isolation, RFC 8011's answers for bad requests and unsupported attributes, the job
life through Create-Job / Send-Document / Cancel, held jobs, job privacy."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from printcloud.docgen.models import BatchRequest
from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation, Status
from tests.helpers.printing import Tenant, make_pdf
from tests.ipp.client import call, job_values, request, send
from tests.ipp.conftest import PASSWORD, USER, IppWorld

ALICE = (USER, PASSWORD)
PDF = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")


def _job_id(uri: str, number: int) -> list[Attribute]:
    return [Attribute("job-id", ValueTag.INTEGER, number)]


def _print(uri: str, auth: Any = ALICE, **kwargs: Any) -> Any:
    body = request(Operation.PRINT_JOB, uri, ops=[PDF], data=make_pdf(1), **kwargs)
    return call(uri, body, auth=auth)


#: The operations are the same app's on either port: the main port's world only. The IPP
#: port is refereed by ipptool's suites and CUPS (test_ipptool, test_cups) and its HTTP
#: handling by test_listener.
IPP_LISTENERS = ("main-port",)


def test_who_may_print(ipp_world: IppWorld) -> None:
    uri, stack = ipp_world.queue_uri, ipp_world.stack
    other = Tenant(stack)
    stack.user(other.id, "bob", "bob's password")
    body = request(Operation.PRINT_JOB, uri, ops=[PDF], data=make_pdf(1))
    for auth in (None, (USER, "wrong"), ("nobody", PASSWORD), ("bob", "bob's password")):
        refused = send(uri, body, auth=auth)
        assert refused.status_code == 401, (auth, refused.status_code)
        assert refused.headers["www-authenticate"].startswith('Basic realm="printcloud ')
    garbled = send(uri, body, headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401
    # a token of another tenant finds no such queue
    token = stack.token(other.app_id, other.app_secret, "print")
    answer = call(uri, body, headers={"Authorization": f"Bearer {token}"})
    assert answer.code == Status.CLIENT_ERROR_NOT_FOUND
    # a token of the queue's tenant prints, as its client (no user)
    mine = stack.token(ipp_world.tenant.app_id, ipp_world.tenant.app_secret, "print")
    ok = call(uri, body, headers={"Authorization": f"Bearer {mine}"})
    assert ok.code == Status.SUCCESSFUL_OK
    # requesting-user-name never authenticates: the job is alice's
    printed = _print(uri, user="the-ceo")
    assert printed.code == Status.SUCCESSFUL_OK
    number = job_values(printed)["job-id"]
    got = call(
        uri, request(Operation.GET_JOB_ATTRIBUTES, uri, ops=_job_id(uri, number)), auth=ALICE
    )
    assert job_values(got)["job-originating-user-name"] == USER


def test_get_printer_attributes_needs_no_credentials_but_a_queue(ipp_world: IppWorld) -> None:
    uri = ipp_world.queue_uri
    answer = call(uri, request(Operation.GET_PRINTER_ATTRIBUTES, uri))
    assert answer.code == Status.SUCCESSFUL_OK
    printer = answer.group(GroupTag.PRINTER)
    assert printer is not None and printer["printer-uri-supported"].value == uri
    assert printer["uri-authentication-supported"].value == "basic"
    assert "media-col-database" not in printer  # only when asked for by name
    for wrong in (uri.rsplit("/", 1)[0] + "/nope", uri.replace(ipp_world.tenant.id, "t000")):
        missing = call(wrong, request(Operation.GET_PRINTER_ATTRIBUTES, wrong))
        assert missing.code == Status.CLIENT_ERROR_NOT_FOUND
    asked = request(
        Operation.GET_PRINTER_ATTRIBUTES,
        uri,
        ops=[
            Attribute(
                "requested-attributes", ValueTag.KEYWORD, ["printer-state", "media-col-database"]
            )
        ],
    )
    names = {a.name for a in call(uri, asked).group(GroupTag.PRINTER) or []}
    assert names == {"printer-state", "media-col-database"}


def test_bad_requests_get_ipp_answers(ipp_world: IppWorld) -> None:
    uri = ipp_world.queue_uri
    garbage = send(uri, b"\x02\x00\x00\x0b\x00\x00\x00\x01\x01\x47\xff\xff", auth=ALICE)
    assert garbage.status_code == 200 and garbage.content[2:4] == b"\x04\x00"
    wrong_type = httpx.post(
        "http" + uri.removeprefix("ipp"), content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 400
    unknown_op = call(uri, request(Operation.PAUSE_PRINTER, uri), auth=ALICE)
    assert unknown_op.code == Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED
    text = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "text/plain")
    refused = call(uri, request(Operation.VALIDATE_JOB, uri, ops=[text]), auth=ALICE)
    assert refused.code == Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED
    broken = request(Operation.PRINT_JOB, uri, ops=[PDF], data=b"%PDF-1.4 not really")
    answer = call(uri, broken, auth=ALICE)
    assert answer.code == Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR
    jobs = call(uri, request(Operation.GET_JOBS, uri, ops=[_which("all")]), auth=ALICE)
    assert all(v for v in jobs.groups_of(GroupTag.JOB))  # the refused job ended, named


def _which(value: str) -> Attribute:
    return Attribute("which-jobs", ValueTag.KEYWORD, value)


def test_unsupported_values_are_substituted_or_refused(ipp_world: IppWorld) -> None:
    uri = ipp_world.queue_uri
    short_edge = Attribute("sides", ValueTag.KEYWORD, "two-sided-short-edge")
    copies = Attribute("copies", ValueTag.INTEGER, 2)
    answer = call(uri, request(Operation.VALIDATE_JOB, uri, job=[short_edge, copies]), auth=ALICE)
    assert answer.code == Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES
    unsupported = answer.group(GroupTag.UNSUPPORTED)
    assert unsupported is not None and unsupported["sides"].value == "two-sided-short-edge"
    fidelity = Attribute("ipp-attribute-fidelity", ValueTag.BOOLEAN, True)
    strict = request(Operation.VALIDATE_JOB, uri, ops=[fidelity], job=[short_edge])
    refused = call(uri, strict, auth=ALICE)
    assert refused.code == Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED
    assert refused.group(GroupTag.UNSUPPORTED)["sides"].value == "two-sided-short-edge"  # type: ignore[index]
    fine = [
        Attribute("sides", ValueTag.KEYWORD, "two-sided-long-edge"),
        Attribute("print-color-mode", ValueTag.KEYWORD, "monochrome"),
        Attribute("media", ValueTag.KEYWORD, "na_letter_8.5x11in"),
        copies,
    ]
    named = Attribute("job-name", ValueTag.NAME, "substituted")
    printed = call(
        uri,
        request(Operation.PRINT_JOB, uri, ops=[PDF, named], job=fine, data=make_pdf(2)),
        auth=ALICE,
    )
    assert printed.code == Status.SUCCESSFUL_OK
    number = job_values(printed)["job-id"]
    job = _wait_state(uri, number, 9)
    assert job["copies"] == 2 and job["sides"] == "two-sided-long-edge"
    options = _printcloud_job(ipp_world, job["job-name"])["options"]
    assert options["duplex"] is True and options["color"] is False and options["media"] == "Letter"


def _wait_state(uri: str, number: int, state: int, auth: Any = ALICE) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        got = job_values(
            call(
                uri, request(Operation.GET_JOB_ATTRIBUTES, uri, ops=_job_id(uri, number)), auth=auth
            )
        )
        if got["job-state"] == state:
            return got
        assert time.monotonic() < deadline, f"job {number} stayed {got['job-state']}: {got}"
        time.sleep(0.2)


def _printcloud_job(world: IppWorld, title: str) -> dict[str, Any]:
    jobs = world.tenant.api.get("/api/jobs", params={"limit": 1000}).json()["jobs"]
    return next(j for j in jobs if j["title"] == title)


def test_create_send_hold_cancel_and_privacy(ipp_world: IppWorld) -> None:
    uri, stack, tenant = ipp_world.queue_uri, ipp_world.stack, ipp_world.tenant
    stack.user(tenant.id, "carol", "carol's password")
    carol = ("carol", "carol's password")
    name = Attribute("job-name", ValueTag.NAME, "two-step")
    created = call(uri, request(Operation.CREATE_JOB, uri, ops=[name]), auth=ALICE)
    assert created.code == Status.SUCCESSFUL_OK
    number = job_values(created)["job-id"]
    assert job_values(created)["job-state"] == 3
    last = Attribute("last-document", ValueTag.BOOLEAN, True)
    # only the owner sends its document or cancels it
    theirs = request(
        Operation.SEND_DOCUMENT, uri, ops=[*_job_id(uri, number), last, PDF], data=make_pdf(1)
    )
    assert call(uri, theirs, auth=carol).code == Status.CLIENT_ERROR_NOT_AUTHORIZED
    no_last = request(
        Operation.SEND_DOCUMENT, uri, ops=[*_job_id(uri, number), PDF], data=make_pdf(1)
    )
    assert call(uri, no_last, auth=ALICE).code == Status.CLIENT_ERROR_BAD_REQUEST
    sent = call(uri, theirs, auth=ALICE)
    assert sent.code == Status.SUCCESSFUL_OK
    _wait_state(uri, number, 9)
    again = call(uri, request(Operation.CANCEL_JOB, uri, ops=_job_id(uri, number)), auth=ALICE)
    assert again.code == Status.CLIENT_ERROR_NOT_POSSIBLE

    # job-hold-until → a held job (pending-held), cancelled by its owner only
    hold = Attribute("job-hold-until", ValueTag.KEYWORD, "indefinite")
    held = call(
        uri, request(Operation.PRINT_JOB, uri, ops=[PDF], job=[hold], data=make_pdf(1)), auth=ALICE
    )
    held_number = job_values(held)["job-id"]
    job = _wait_state(uri, held_number, 4)
    assert job["job-state-reasons"] == "job-hold-until-specified"
    cancel = request(Operation.CANCEL_JOB, uri, ops=_job_id(uri, held_number))
    assert call(uri, cancel, auth=carol).code == Status.CLIENT_ERROR_NOT_AUTHORIZED
    # carol sees alice's job, without its name or owner
    seen = job_values(
        call(
            uri,
            request(Operation.GET_JOB_ATTRIBUTES, uri, ops=_job_id(uri, held_number)),
            auth=carol,
        )
    )
    assert (
        seen["job-state"] == 4
        and "job-name" not in seen
        and "job-originating-user-name" not in seen
    )
    mine = Attribute("my-jobs", ValueTag.BOOLEAN, True)
    listed = call(uri, request(Operation.GET_JOBS, uri, ops=[mine]), auth=carol)
    assert listed.groups_of(GroupTag.JOB) == []
    everyone = call(uri, request(Operation.GET_JOBS, uri), auth=carol)
    assert held_number in [g["job-id"].value for g in everyone.groups_of(GroupTag.JOB)]
    assert call(uri, cancel, auth=ALICE).code == Status.SUCCESSFUL_OK
    gone = _wait_state(uri, held_number, 7)
    assert gone["job-state-reasons"] == "job-canceled-by-user"

    # Cancel-My-Jobs cancels what is still to come, Close-Job ends an empty job
    pending = [
        job_values(call(uri, request(Operation.CREATE_JOB, uri), auth=ALICE))["job-id"]
        for _ in range(2)
    ]
    closed = call(uri, request(Operation.CLOSE_JOB, uri, ops=_job_id(uri, pending[0])), auth=ALICE)
    assert closed.code == Status.SUCCESSFUL_OK and job_values(closed)["job-state"] == 8
    assert (
        call(uri, request(Operation.CANCEL_MY_JOBS, uri), auth=ALICE).code == Status.SUCCESSFUL_OK
    )
    assert _wait_state(uri, pending[1], 7)["job-state"] == 7

    # a private queue shows carol nothing of alice's
    root = stack.api(stack.user_token(tenant.id, "root", "admin password", "admin"))
    made = root.post(
        "/api/queues", json={"name": "private", "printer_id": "color-1", "job_privacy": "none"}
    )
    assert made.status_code == 201, made.text
    private = made.json()["uri"]
    alices = job_values(_print(private))["job-id"]
    peek = request(Operation.GET_JOB_ATTRIBUTES, private, ops=_job_id(private, alices))
    assert call(private, peek, auth=carol).code == Status.CLIENT_ERROR_NOT_FOUND
    listing = call(private, request(Operation.GET_JOBS, private, ops=[_which("all")]), auth=carol)
    assert listing.groups_of(GroupTag.JOB) == []


def _supported_values(uri: str, *names: str, auth: Any = ALICE) -> httpx.Response:
    ops = [Attribute("requested-attributes", ValueTag.KEYWORD, list(names))] if names else []
    return send(uri, request(Operation.GET_PRINTER_SUPPORTED_VALUES, uri, ops=ops), auth=auth)


def test_get_printer_supported_values_nothing_is_settable(ipp_world: IppWorld) -> None:
    """RFC 3380 §4.3: nothing of a queue is set over IPP, so each requested xxx-supported
    attribute the queue has comes back `not-settable`; others are left out."""
    uri = ipp_world.queue_uri
    assert _supported_values(uri, "media-supported", auth=None).status_code == 401
    asked = _supported_values(uri, "media-supported", "sides-supported", "printer-name", "nope")
    answer = decode(asked.content)
    assert answer.code == Status.SUCCESSFUL_OK, answer
    printer = answer.group(GroupTag.PRINTER)
    assert printer is not None
    assert {a.name for a in printer} == {"media-supported", "sides-supported"}
    assert all(a.tags == [ValueTag.NOT_SETTABLE] for a in printer)
    # without requested-attributes: every xxx-supported attribute of the queue, not-settable
    everything = decode(_supported_values(uri).content).group(GroupTag.PRINTER)
    assert everything is not None
    names = {a.name for a in everything}
    assert {"media-supported", "copies-supported", "operations-supported"} <= names
    assert all(n.endswith("-supported") for n in names)
    assert all(a.tags == [ValueTag.NOT_SETTABLE] for a in everything)
    # the queue says so, and lists the operation
    got = call(
        uri,
        request(
            Operation.GET_PRINTER_ATTRIBUTES,
            uri,
            ops=[
                Attribute(
                    "requested-attributes",
                    ValueTag.KEYWORD,
                    ["printer-settable-attributes-supported", "operations-supported"],
                )
            ],
        ),
    )
    printer = got.group(GroupTag.PRINTER)
    assert printer is not None
    assert printer["printer-settable-attributes-supported"].values == ["none"]
    assert Operation.GET_PRINTER_SUPPORTED_VALUES in printer["operations-supported"].values


def _subscribe_job(uri: str, number: int, *events: str, auth: Any = ALICE) -> Any:
    template = [Attribute("notify-pull-method", ValueTag.KEYWORD, "ippget")]
    if events:
        template.append(Attribute("notify-events", ValueTag.KEYWORD, list(events)))
    body = Message(
        int(Operation.CREATE_JOB_SUBSCRIPTIONS),
        9,
        [
            Group(
                GroupTag.OPERATION,
                [
                    Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
                    Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
                    Attribute("printer-uri", ValueTag.URI, uri),
                    Attribute("notify-job-id", ValueTag.INTEGER, number),
                ],
            ),
            Group(GroupTag.SUBSCRIPTION, template),
        ],
        version=(2, 0),
    )
    return call(uri, encode(body), auth=auth)


def _notifications(uri: str, subscription: int, start: int = 1, auth: Any = ALICE) -> Any:
    ops = [
        Attribute("notify-subscription-ids", ValueTag.INTEGER, subscription),
        Attribute("notify-sequence-numbers", ValueTag.INTEGER, start),
        Attribute("notify-wait", ValueTag.BOOLEAN, True),
    ]
    return call(uri, request(Operation.GET_NOTIFICATIONS, uri, ops=ops), auth=auth)


def job_events(uri: str, subscription: int, until: str, auth: Any = ALICE) -> list[Group]:
    """Get-Notifications (notify-wait) until an event `until` arrives."""
    events: list[Group] = []
    deadline = time.monotonic() + 120
    while not any(e["notify-subscribed-event"].value == until for e in events):
        assert time.monotonic() < deadline, f"no {until} event: {events}"
        start = events[-1]["notify-sequence-number"].value + 1 if events else 1
        got = _notifications(uri, subscription, start, auth=auth)
        assert got.code == Status.SUCCESSFUL_OK, got
        events += got.groups_of(GroupTag.EVENT_NOTIFICATION)
    return events


def test_a_users_job_subscription(ipp_world: IppWorld) -> None:
    """Create-Job-Subscriptions (RFC 3995) for the user's own job, pulled with ippget:
    the job's state changes and its completion; nobody else's job, nobody else reads."""
    uri, stack, tenant = ipp_world.queue_uri, ipp_world.stack, ipp_world.tenant
    printed = _print(uri)
    assert printed.code == Status.SUCCESSFUL_OK, printed
    number = job_values(printed)["job-id"]
    stack.user(tenant.id, "subscriber-other", "another user's password")
    other_user = ("subscriber-other", "another user's password")
    # another user's job: not authorized (the queue shows others' jobs), or not found
    refused = _subscribe_job(uri, number, auth=other_user)
    assert refused.code in (Status.CLIENT_ERROR_NOT_AUTHORIZED, Status.CLIENT_ERROR_NOT_FOUND)
    assert _subscribe_job(uri, 999_999).code == Status.CLIENT_ERROR_NOT_FOUND
    assert send(uri, encode(Message(0x17, 1, []))).status_code == 200  # garbled: an IPP answer
    # a push method, or events a job has not: ignored
    pushed = Message(
        int(Operation.CREATE_JOB_SUBSCRIPTIONS),
        3,
        [
            Group(
                GroupTag.OPERATION,
                [
                    Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
                    Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
                    Attribute("printer-uri", ValueTag.URI, uri),
                    Attribute("notify-job-id", ValueTag.INTEGER, number),
                ],
            ),
            Group(
                GroupTag.SUBSCRIPTION,
                [Attribute("notify-recipient-uri", ValueTag.URI, "mailto:a@example.com")],
            ),
        ],
        version=(2, 0),
    )
    ignored = call(uri, encode(pushed), auth=ALICE)
    assert ignored.code == Status.CLIENT_ERROR_IGNORED_ALL_SUBSCRIPTIONS, ignored
    assert _subscribe_job(uri, number, "printer-state-changed").code == (
        Status.CLIENT_ERROR_IGNORED_ALL_SUBSCRIPTIONS
    )
    made = _subscribe_job(uri, number, "job-state-changed", "job-completed")
    assert made.code == Status.SUCCESSFUL_OK, made
    subscription = made.value(GroupTag.SUBSCRIPTION, "notify-subscription-id")
    events = job_events(uri, subscription, "job-completed")
    assert all(e["notify-job-id"].value == number for e in events)
    assert events[0]["notify-subscribed-event"].value == "job-state-changed"
    done = [e for e in events if e["notify-subscribed-event"].value == "job-completed"]
    assert len(done) == 1 and done[0]["job-state"].value == 9  # completed
    assert [e["notify-sequence-number"].value for e in events] == list(range(1, len(events) + 1))
    # nobody else reads it or ends it; another tenant does not even find the queue
    assert _notifications(uri, subscription, auth=other_user).code == Status.CLIENT_ERROR_NOT_FOUND
    other = Tenant(stack)
    token = stack.token(other.app_id, other.app_secret, "print")
    foreign = call(
        uri,
        request(
            Operation.GET_NOTIFICATIONS,
            uri,
            ops=[Attribute("notify-subscription-ids", ValueTag.INTEGER, subscription)],
        ),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert foreign.code == Status.CLIENT_ERROR_NOT_FOUND
    cancel = [Attribute("notify-subscription-id", ValueTag.INTEGER, subscription)]
    not_hers = call(uri, request(Operation.CANCEL_SUBSCRIPTION, uri, ops=cancel), auth=other_user)
    assert not_hers.code == Status.CLIENT_ERROR_NOT_FOUND
    ended = call(uri, request(Operation.CANCEL_SUBSCRIPTION, uri, ops=cancel), auth=ALICE)
    assert ended.code == Status.SUCCESSFUL_OK, ended
    assert _notifications(uri, subscription).code == Status.CLIENT_ERROR_NOT_FOUND


def _batch_run(
    tenant_id: str,
    request_id: str,
    at: datetime,
    state: str,
    job_ids: list[str],
    reason: str | None = None,
) -> BatchRequest:
    """A nightly run of docgen as its batch flow records it (the report only reads it)."""
    step = {"at": at.isoformat(), "step": "S1525", "state": state, "detail": ""}
    return BatchRequest(
        request_id=request_id,
        tenant_id=tenant_id,
        received_at=at,
        source="crm",
        state=state,
        reason=reason,
        job="nightly",
        steps=[step],
        print_job_ids=job_ids,
    )


def test_accounting_refuses_what_cannot_be_paid_and_charges_what_printed(
    ipp_world: IppWorld,
) -> None:
    """Issue 18 end to end on this module's stack and running printer: the admin API turns
    accounting on; a job nobody can pay for is refused over IPP (client-error-not-
    authorized) and the API (402), both naming the balance and the cost; once paid in,
    an IPP job prints and is charged by the workflow; a refund; the pages in words."""
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlencode

    from sqlalchemy import delete

    from printcloud.printing.accounting.models import AccountingSettingsRow, PriceRow
    from tests.helpers.browser import PrintBrowser, form_to
    from tests.helpers.printing import pdf_text

    uri, stack, tenant = ipp_world.queue_uri, ipp_world.stack, ipp_world.tenant
    admin = stack.api(stack.user_token(tenant.id, "root", "admin password", "admin print"))
    alice = stack.api(stack.user_token(tenant.id, USER, PASSWORD, "print"))
    try:
        assert admin.put("/api/accounting/settings", json={"currency": "EUR"}).status_code == 200
        bad = admin.put("/api/accounting/prices", json={"mono": -1, "color": 20})
        assert bad.status_code == 400 and "mono" in bad.text
        assert alice.put("/api/accounting/prices", json={"mono": 1, "color": 1}).status_code == 403
        price = admin.put("/api/accounting/prices", json={"mono": 5, "color": 20})
        assert price.status_code == 200, price.text

        refused = _print(uri)  # one color page: 0.20 EUR, and alice has nothing
        assert refused.code == Status.CLIENT_ERROR_NOT_AUTHORIZED
        said = refused.group(GroupTag.OPERATION)["status-message"].value  # type: ignore[index]
        assert "your balance is 0.00 EUR and this job costs 0.20 EUR" in said
        files = {"file": ("a.pdf", make_pdf(2), "application/pdf")}
        answer = alice.post("/api/jobs", data={"printer_id": "color-1"}, files=files)
        assert answer.status_code == 402, answer.text
        assert answer.json()["error"] == "payment_required"
        assert "this job costs 0.40 EUR" in answer.json()["error_description"]

        me = alice.get("/api/accounting/me").json()
        name = me["accounts"][0]["name"]
        paid = admin.post(
            f"/api/accounting/accounts/user/{name}/top-up", json={"amount": 100, "reason": "cash"}
        )
        assert paid.status_code == 200 and paid.json()["balance_text"] == "1.00 EUR"
        assert (
            admin.post(
                f"/api/accounting/accounts/user/{name}/top-up", json={"amount": 5, "reason": ""}
            ).status_code
            == 400
        )

        printed = _print(uri)
        assert printed.code == Status.SUCCESSFUL_OK
        job_id = alice.get("/api/jobs").json()["jobs"][0]["job_id"]
        deadline = time.monotonic() + 120  # "stuck": the printer prints, the workflow charges
        while (cost := admin.get(f"/api/accounting/jobs/{job_id}").json())["charged"] is None:
            assert time.monotonic() < deadline, cost
            time.sleep(0.2)
        assert cost == {
            "job_id": job_id,
            "reserved": 20,
            "charged": 20,
            "refunded": 0,
            "impressions": 1,
        }
        assert alice.get("/api/accounting/me").json()["accounts"][0]["balance"] == 80
        refund = admin.post(f"/api/accounting/jobs/{job_id}/refund", json={"reason": "smudged"})
        assert refund.status_code == 200 and refund.json()["actor"]
        assert alice.get("/api/accounting/me").json()["accounts"][0]["balance"] == 100

        today = datetime.now(UTC).date()
        period = {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=1))}
        usage = admin.get("/api/accounting/report", params=period).json()["rows"]
        assert [(r["key"], r["jobs"], r["impressions"], r["net"]) for r in usage] == [
            (name, 1, 1, 0)
        ]
        as_csv = admin.get("/api/accounting/report", params={**period, "format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.text.splitlines()[1] == f"{name},1,1,1,1,0,0,20,20,0,0.00 EUR"

        browser = PrintBrowser(stack, (tenant.id, USER, PASSWORD))
        page = browser.open("/printing/account")
        assert page.status_code == 200 and "1.00 EUR" in page.text and "Refund" in page.text
        assert browser.http.get("/printing/accounting").status_code == 403
        boss = PrintBrowser(stack, (tenant.id, "root", "admin password"))
        settings_page = boss.open("/printing/accounting")
        assert settings_page.status_code == 200 and "Prices per printed side" in settings_page.text
        form = form_to(settings_page.text, "/printing/accounting/move")
        fields = {**form.hidden, "account": f"user:{name}", "how": "topup", "reason": "voucher"}
        typo = boss.http.post(form.action, data={**fields, "amount": "0.505"})
        assert typo.status_code == 400 and "Amount must be an amount like 2.50" in typo.text
        moved = boss.http.post(form.action, data={**fields, "amount": "0.50"})
        assert moved.status_code == 303
        assert "Money added." in boss.http.get(moved.headers["location"]).text
        report = boss.http.get("/printing/accounting/report", params=period)
        assert report.status_code == 200 and "<svg" in report.text and name in report.text
        csv_link = boss.http.get(f"/printing/accounting/report.csv?{urlencode(period)}")
        assert csv_link.status_code == 200 and csv_link.text == as_csv.text
        assert "No batch runs in this period." in report.text  # docgen answered: none

        # the nightly batch runs, from docgen's API with the admin's own sign-in
        now = datetime.now(UTC)
        with stack.db.session() as s:
            s.add_all(
                [
                    _batch_run(tenant.id, "rep-done", now, "completed", [job_id]),
                    _batch_run(tenant.id, "rep-stop", now, "suspended", [], "no print token"),
                    _batch_run("someone-else", "rep-other", now, "suspended", [], "not yours"),
                ]
            )
            s.commit()
        report = boss.http.get("/printing/accounting/report", params=period)
        assert report.status_code == 200, report.text
        assert "2 runs · 1 document · 1 page printed · 1 suspended" in report.text
        assert "no print token" in report.text and "not yours" not in report.text
        runs_csv = boss.http.get(f"/printing/accounting/batch-runs.csv?{urlencode(period)}")
        assert runs_csv.status_code == 200 and runs_csv.text.count("\n") == 3, runs_csv.text
        assert ",completed,S1525,,1,1,rep-done" in runs_csv.text
        pdf = boss.http.get(f"/printing/accounting/report.pdf?{urlencode(period)}")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        text = pdf_text(pdf.content)
        assert f"{name} 1 1 1 1 0 0 0.20 EUR 0.20 EUR 0.00 EUR" in text
        assert "no print token" in text and "not yours" not in text
        assert browser.http.get("/printing/accounting/report.pdf").status_code == 403
        # docgen's side of it, for the tenant's administrator only
        runs_url = f"{stack.base_url}/docgen/api/batch-runs"
        mine = admin.get(runs_url, params=period)
        assert mine.status_code == 200, mine.text
        assert sorted(r["request_id"] for r in mine.json()["runs"]) == ["rep-done", "rep-stop"]
        assert alice.get(runs_url, params=period).status_code == 403
        bad = admin.post(f"{stack.base_url}/docgen/api/usage-report", json={"title": "t"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_request", bad.text
        assert alice.get("/api/accounting/me").json()["accounts"][0]["balance_text"] == "1.50 EUR"
    finally:
        with stack.db.session() as s:  # the module's other tests print for free again
            s.execute(delete(BatchRequest).where(BatchRequest.request_id.like("rep-%")))
            s.execute(delete(PriceRow).where(PriceRow.tenant_id == tenant.id))
            s.execute(
                delete(AccountingSettingsRow).where(AccountingSettingsRow.tenant_id == tenant.id)
            )
