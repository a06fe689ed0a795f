"""The admin pages' directory of a tenant for card registration (seed 004): its
own users or LDAP, and "test connection"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from printcloud.core.errors import InvalidRequest, PrintcloudError
from printcloud.core.web import check_csrf

from .. import cards
from ..admin_api.deps import admin_session
from ..admin_api.directory import directory_read
from ..directory import LdapSettings, check_settings
from ..runtime import Runtime
from .base import (
    EXPIRED,
    Ctx,
    Done,
    Flag,
    FormCall,
    Number,
    Page,
    PageCall,
    admin_gate,
    checked,
    render_page,
    set_flash,
    whole_number,
)

router = APIRouter()

Long = Annotated[str, Form(max_length=500)]
Attribute = Annotated[str, Form(max_length=64)]
#: The directory's CA certificates, pasted as PEM text (directory.MAX_CA_PEM).
CaPem = Annotated[str, Form(max_length=65_536)]
#: "Test connection" counts a directory's users up to this many.
COUNT_LIMIT = 10_000


def _directory(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"directory": directory_read(ctx.tenant, cards.directory_of(db, tenant=ctx.tenant))}


@router.get("/{issuer}/admin/directory")
def directory_page(call: PageCall) -> Response:
    return call.show(DIRECTORY)


DIRECTORY = Page("admin/directory.html", "directory", "Directory", _directory)


@router.post("/{issuer}/admin/directory")
def save_directory(
    call: FormCall,
    *,
    kind: Annotated[str, Form(max_length=16)] = "builtin",
    url: Long = "",
    base_dn: Long = "",
    user_attr: Attribute = "uid",
    object_class: Attribute = "inetOrgPerson",
    bind_dn: Long = "",
    bind_password: Long = "",
    remove_bind_password: Flag = "",
    name_attr: Attribute = "cn",
    mail_attr: Attribute = "mail",
    start_tls: Flag = "",
    ca_pem: CaPem = "",
    timeout: Number = "5",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        # The password is write-only: empty keeps the stored one, the box removes it.
        password = "" if checked(remove_bind_password) else (bind_password or None)
        cards.set_directory(
            db,
            tenant=ctx.tenant,
            box=call.rt.box,
            egress=call.rt.settings.egress_policy,
            actor=ctx.admin.actor,
            kind=kind,
            url=url.strip(),
            base_dn=base_dn.strip(),
            user_attr=user_attr.strip(),
            object_class=object_class.strip(),
            bind_dn=bind_dn.strip() or None,
            bind_password=password,
            name_attr=name_attr.strip(),
            mail_attr=mail_attr.strip(),
            start_tls=checked(start_tls),
            ca_pem=ca_pem.strip() or None,
            timeout=whole_number(timeout, "timeout", "seconds"),
        )
        return Done("Directory saved.", "/directory")

    # never the password: a page with an error shows the form without it
    sent = {
        "kind": kind,
        "url": url,
        "base_dn": base_dn,
        "user_attr": user_attr,
        "object_class": object_class,
        "bind_dn": bind_dn,
        "remove_bind_password": checked(remove_bind_password),
        "name_attr": name_attr,
        "mail_attr": mail_attr,
        "start_tls": checked(start_tls),
        "ca_pem": ca_pem,
        "timeout": timeout,
    }
    return call.run(work, page=DIRECTORY, form=sent)


@router.post("/{issuer}/admin/directory/test")
def try_directory(call: FormCall) -> Response:
    """The saved LDAP settings' "test connection": bind and count the users.

    A plain `def`, so FastAPI runs it in its threadpool; the directory is asked with
    no database connection held, as it may take its whole timeout to answer."""
    rt, request = call.rt, call.request
    with admin_session(rt) as db:
        ctx = admin_gate(rt, request, db, call.issuer, call.tenant_id)
        if isinstance(ctx, Response):
            return ctx
        if not check_csrf(request, call.csrf):
            return render_page(rt, request, db, ctx, DIRECTORY, status=400, error=EXPIRED)
        row = cards.directory_of(db, tenant=ctx.tenant)
        settings: LdapSettings | PrintcloudError
        if row is None or row.kind != "ldap":
            settings = InvalidRequest(
                "This organisation uses its own users: there is no directory to test. "
                "Choose LDAP and save first.",
                field="kind",
            )
        else:
            try:
                settings = cards.ldap_settings(row, rt.box)
            except ValueError:  # sealed under an instance secret no longer configured
                settings = InvalidRequest(
                    "The stored service-account password cannot be decrypted; enter it again.",
                    field="bind_password",
                )
    try:
        if isinstance(settings, PrintcloudError):
            raise settings
        found = check_settings(settings, egress=rt.settings.egress_policy, limit=COUNT_LIMIT)
    except PrintcloudError as exc:
        with admin_session(rt) as db:
            again = admin_gate(rt, request, db, call.issuer, call.tenant_id)
            if isinstance(again, Response):
                return again
            return render_page(
                rt,
                request,
                db,
                again,
                DIRECTORY,
                status=exc.status_code,
                error=exc.description,
                error_field=exc.field,
            )
    many = "at least " if found >= COUNT_LIMIT else ""
    response = RedirectResponse(ctx.url("/directory"), status_code=303)
    notice = f"The directory answers: {many}{found} user{'' if found == 1 else 's'} found."
    set_flash(rt, response, ctx, notice)
    return response
