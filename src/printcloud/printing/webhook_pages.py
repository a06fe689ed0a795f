"""The tenant administrator's webhook pages (issue 18), in the print service's console:

- `/printing/webhooks`: the organisation's webhooks (address, events in words, on or
  off and why), a banner for those the platform turned off after failing, the add form
  (address, what it is for, the events to send) and what was done to them lately;
- `/printing/webhooks/{id}`: its delivery log (each event with its last answer: status,
  the start of the body, how long it took), and its buttons: send a test event, new
  signing secret, turn off or on, delete. A signing secret is shown once, on the page
  that answers the add or the rotation.

The same calls as the admin API (`webhook_routes.py`) and `printcloud admin webhook`:
the rules are in `printcloud.webhooks.service`. Administrators only (the admin API's
rule: the scope `admin` and the issuer's `admin` claim, now).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core import words
from printcloud.core.errors import PrintcloudError
from printcloud.core.guard import Principal
from printcloud.core.web import check_csrf
from printcloud.webhooks import outbox
from printcloud.webhooks import service as webhooks
from printcloud.webhooks.schemas import DeliveryRead, WebhookRead

from .deps import RuntimeDep
from .pages import PREFIX, SignedIn, manages_queues, site
from .runtime import PrintingRuntime

router = APIRouter(include_in_schema=False)
_EXPIRED = "Your form expired. Reload the page and try again."
#: After a change, the page it leads to says what happened (`?done=…`: fixed sentences).
DONE = {
    "tested": "Test event sent. It appears in the log below in a moment.",
    "enabled": "Webhook turned on. New events are sent to it again.",
    "disabled": "Webhook turned off. No events are sent to it until you turn it on.",
    "deleted": "Webhook deleted.",
}
_ERRORS = (
    ("url must be", "Enter a full http:// or https:// address."),
    ("url is not a valid URL", "Enter a full http:// or https:// address."),
    ("must not carry a user name", "Leave the user name and password out of the address."),
    (
        "url: ",
        "The platform cannot send events to this address (it is not on the internet, "
        "or its name does not resolve). Check the address.",
    ),
    ("choose at least one event", "Choose at least one event to send."),
    ("unknown event type", "Choose events from the list."),
    ("at most", "Your organisation has as many webhooks as it may have. Delete one first."),
    ("turned off", "Turn the webhook on before sending it a test event."),
    ("unknown webhook", "This webhook no longer exists. It may have been deleted already."),
)


def error_text(description: str) -> str:
    for phrase, plain in _ERRORS:
        if phrase in description:
            return plain
    return words.form_error(description)


@dataclass(frozen=True)
class AddForm:
    url: str = ""
    description: str = ""
    events: tuple[str, ...] = ("job.printed", "job.cancelled")
    error: str = ""
    field: str = ""


def _administrators_only(request: Request, principal: Principal) -> Response:
    return site.message(
        request,
        403,
        "Administrators only",
        "Webhooks are managed by your organisation's administrators.",
        principal=principal,
        back=True,
    )


def _list_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    with rt.db.sessions() as db:
        rows = webhooks.list_subscriptions(db, tenant_id=principal.tenant_id)
        trail = webhooks.audit_trail(db, tenant_id=principal.tenant_id, limit=20)
    listed = [WebhookRead.of(r) for r in rows]
    return {
        "webhooks": listed,
        "turned_off": [
            w
            for w in listed
            if not w.enabled and w.disabled_reason.startswith(webhooks.TURNED_OFF_BY_PLATFORM)
        ],
        "trail": trail,
        "event_types": list(outbox.EVENT_TYPES),
    }


async def _list_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    form: AddForm | None = None,
) -> Response:
    context = await run_in_threadpool(_list_context, rt, principal)
    notice = DONE.get(request.query_params.get("done", ""))
    return site.render(
        request,
        "webhooks.html",
        status_code,
        principal=principal,
        area="webhooks",
        form=form or AddForm(),
        notice=notice,
        **context,
    )


@router.get("/webhooks")
async def webhooks_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    return await _list_page(request, rt, principal)


@router.post("/webhooks")
async def add_webhook(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=40) as sent:
        fields = {k: v for k, v in sent.items() if isinstance(v, str)}
        chosen = tuple(v for v in sent.getlist("event") if isinstance(v, str))
    form = AddForm(
        url=fields.get("url", "").strip(),
        description=fields.get("description", "").strip(),
        events=chosen,
    )
    if not check_csrf(request, fields.get("csrf")):
        return await _list_page(
            request,
            rt,
            principal,
            status_code=400,
            form=AddForm(form.url, form.description, chosen, _EXPIRED),
        )

    def add() -> tuple[str, str]:
        with rt.db.session() as db:
            row, secret = webhooks.add(
                db,
                tenant_id=principal.tenant_id,
                url=form.url,
                event_types=list(chosen),
                description=form.description,
                box=rt.box,
                egress=rt.settings.egress_policy,
                by=principal.acting_user,
            )
            return row.subscription_id, secret

    try:
        subscription_id, secret = await run_in_threadpool(add)
    except PrintcloudError as exc:
        field = exc.field if exc.field in ("url", "event_types") else ""
        failed = AddForm(form.url, form.description, chosen, error_text(exc.description), field)
        return await _list_page(request, rt, principal, status_code=exc.status_code, form=failed)
    return await _detail_page(
        request, rt, principal, subscription_id, secret=secret, shown_after="added"
    )


def _detail_context(
    rt: PrintingRuntime, principal: Principal, subscription_id: str
) -> dict[str, Any]:
    with rt.db.sessions() as db:
        row = webhooks.get(db, tenant_id=principal.tenant_id, subscription_id=subscription_id)
        log = webhooks.delivery_log(
            db, tenant_id=principal.tenant_id, subscription_id=subscription_id, limit=50
        )
        return {"webhook": WebhookRead.of(row), "log": [DeliveryRead.of(e) for e in log]}


async def _detail_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    subscription_id: str,
    *,
    status_code: int = 200,
    secret: str = "",
    shown_after: str = "",
    error: str = "",
) -> Response:
    try:
        context = await run_in_threadpool(_detail_context, rt, principal, subscription_id)
    except PrintcloudError as exc:
        return site.message(
            request,
            exc.status_code,
            "No such webhook",
            error_text(exc.description),
            principal=principal,
            back=True,
        )
    return site.render(
        request,
        "webhook.html",
        status_code,
        principal=principal,
        area="webhooks",
        secret=secret,
        shown_after=shown_after,
        error=error,
        notice=DONE.get(request.query_params.get("done", "")),
        **context,
    )


@router.get("/webhooks/{subscription_id}")
async def webhook_page(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    return await _detail_page(request, rt, principal, subscription_id)


async def _button(
    request: Request,
    rt: RuntimeDep,
    principal: Principal,
    subscription_id: str,
    work: Callable[[Session], str],
) -> Response:
    """One button of a webhook's page: administrator, CSRF, `work` (what `DONE` says),
    then to the page it leads to; a refusal shows the webhook's page with the error."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=4) as sent:
        token = sent.get("csrf")
    if not check_csrf(request, token if isinstance(token, str) else None):
        return await _detail_page(
            request, rt, principal, subscription_id, status_code=400, error=_EXPIRED
        )

    def in_session() -> str:
        with rt.db.session() as db:
            return work(db)

    try:
        done = await run_in_threadpool(in_session)
    except PrintcloudError as exc:
        return await _detail_page(
            request,
            rt,
            principal,
            subscription_id,
            status_code=exc.status_code,
            error=error_text(exc.description),
        )
    where = f"{PREFIX}/webhooks" if done == "deleted" else f"{PREFIX}/webhooks/{subscription_id}"
    return site.finish(request, RedirectResponse(f"{where}?done={done}", status_code=303))


@router.post("/webhooks/{subscription_id}/test")
async def test_webhook(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    return await _button(
        request,
        rt,
        principal,
        subscription_id,
        _by_admin(webhooks.send_test, "tested", principal, subscription_id),
    )


@router.post("/webhooks/{subscription_id}/enable")
async def enable_webhook(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    return await _switch(request, rt, principal, subscription_id, on=True)


@router.post("/webhooks/{subscription_id}/disable")
async def disable_webhook(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    return await _switch(request, rt, principal, subscription_id, on=False)


def _by_admin(
    action: Callable[..., object], done: str, principal: Principal, subscription_id: str
) -> Callable[[Session], str]:
    """The button's work: `action` on the tenant's subscription by the signed-in admin;
    `done` names what happened on the page it returns to."""

    def work(db: Session) -> str:
        action(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            by=principal.acting_user,
        )
        return done

    return work


async def _switch(
    request: Request, rt: RuntimeDep, principal: Principal, subscription_id: str, *, on: bool
) -> Response:
    def work(db: Session) -> str:
        webhooks.update(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            by=principal.acting_user,
            egress=rt.settings.egress_policy,
            enabled=on,
        )
        return "enabled" if on else "disabled"

    return await _button(request, rt, principal, subscription_id, work)


@router.post("/webhooks/{subscription_id}/delete")
async def delete_webhook(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    return await _button(
        request,
        rt,
        principal,
        subscription_id,
        _by_admin(webhooks.remove, "deleted", principal, subscription_id),
    )


@router.post("/webhooks/{subscription_id}/rotate")
async def rotate_webhook(
    subscription_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """A new signing secret, shown on the answer; the current one signs too for a day
    (`PRINTCLOUD_WEBHOOK_ROTATION_OVERLAP`) so the receiver can switch without a gap."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=4) as sent:
        token = sent.get("csrf")
    if not check_csrf(request, token if isinstance(token, str) else None):
        return await _detail_page(
            request, rt, principal, subscription_id, status_code=400, error=_EXPIRED
        )

    def rotate() -> str:
        with rt.db.session() as db:
            _, secret = webhooks.rotate(
                db,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                box=rt.box,
                by=principal.acting_user,
                overlap=timedelta(seconds=rt.settings.webhook_rotation_overlap),
            )
            return secret

    try:
        secret = await run_in_threadpool(rotate)
    except PrintcloudError as exc:
        return await _detail_page(
            request,
            rt,
            principal,
            subscription_id,
            status_code=exc.status_code,
            error=error_text(exc.description),
        )
    return await _detail_page(
        request, rt, principal, subscription_id, secret=secret, shown_after="rotated"
    )
