"""The admin pages' overview and tenant settings (held-job release, seed 001
cooperation mode, seed 002 consent, card retention), and new tenants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from sqlalchemy.orm import Session

from printcloud.core.errors import InvalidRequest, NotFound

from .. import service
from ..models import CardBinding, Client, TenantConsent, User
from ..runtime import Runtime
from .base import Ctx, Done, Flag, FormCall, Number, Page, PageCall, checked, whole_number

router = APIRouter()


def _overview(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    tenant = ctx.tenant
    return {
        "counts": {
            "users": service.count_rows(db, User, User.tenant_pk == tenant.pk),
            "clients": service.count_rows(db, Client, Client.tenant_pk == tenant.pk),
            "cards": service.count_rows(db, CardBinding, CardBinding.tenant_pk == tenant.pk),
            "tenant_consents": service.count_rows(
                db,
                TenantConsent,
                TenantConsent.tenant_pk == tenant.pk,
                TenantConsent.revoked_at.is_(None),
            ),
        }
    }


OVERVIEW = Page("admin/overview.html", "overview", "Overview", _overview)


@router.get("/{issuer}/admin")
def overview(call: PageCall) -> Response:
    return call.show(OVERVIEW)


@router.post("/{issuer}/admin/settings")
def save_settings(
    call: FormCall,
    *,
    name: Annotated[str, Form(max_length=200)] = "",
    local_auth_cooperation: Flag = "",
    users_may_grant_tenant_consent: Flag = "",
    card_retention_days: Number = "",
    held_release: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        # not sent (an older form): the period stays as it is
        days = (
            whole_number(card_retention_days, "card_retention_days", "days")
            if card_retention_days
            else None
        )
        if days is not None and not 1 <= days <= 3650:
            raise InvalidRequest(
                "Enter a number of days from 1 to 3650.", field="card_retention_days"
            )
        if not name.strip():
            raise InvalidRequest("Enter a display name for the organisation.", field="name")
        service.update_tenant_settings(
            db,
            tenant=ctx.tenant,
            actor=ctx.admin.actor,
            name=name,
            local_auth_cooperation=checked(local_auth_cooperation),
            users_may_grant_tenant_consent=checked(users_may_grant_tenant_consent),
            card_retention_days=days,
            held_release=held_release or None,
        )
        return Done("Settings saved.", clients_changed=True)

    return call.run(
        work,
        page=OVERVIEW,
        form={"name": name, "card_retention_days": card_retention_days},
    )


@router.post("/{issuer}/admin/tenants")
def create_tenant(
    call: FormCall,
    *,
    tenant_id: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        if not ctx.admin.is_system:
            raise NotFound("no such page")
        created = service.create_tenant(
            db,
            issuer=call.issuer,
            tenant_id=tenant_id.strip(),
            name=name.strip(),
            actor=ctx.admin.actor,
        )
        return Done(f"Organisation {created.tenant_id} created.", tenant_id=created.tenant_id)

    return call.run(
        work,
        page=OVERVIEW,
        form={"new_tenant_id": tenant_id, "new_tenant_name": name},
    )
