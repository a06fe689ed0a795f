"""The admin pages' consents (seed 002): tenant-wide ones and those users remembered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..pages import SCOPE_TEXT
from ..runtime import Runtime
from .base import Ctx, Done, FormCall, Page, PageCall, row_pk

router = APIRouter()


def _consents(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {
        "tenant_consents": service.list_tenant_consents(
            db, tenant=ctx.tenant, include_revoked=True
        ),
        "user_consents": service.list_user_consents(db, tenant=ctx.tenant),
        "scope_text": SCOPE_TEXT,
    }


CONSENTS = Page("admin/consents.html", "consents", "Consents", _consents)


@router.get("/{issuer}/admin/consents")
def consents(call: PageCall) -> Response:
    return call.show(CONSENTS)


@router.post("/{issuer}/admin/consents/tenant/{consent_id}/revoke")
def revoke_tenant_consent(call: FormCall, consent_id: int) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        consent = service.revoke_tenant_consent(
            db, tenant=ctx.tenant, consent_pk=row_pk(consent_id), actor=ctx.admin.actor
        )
        return Done(
            f"The organisation-wide consent for {consent.client.name} was revoked.", "/consents"
        )

    return call.run(work, page=CONSENTS)


@router.post("/{issuer}/admin/consents/user/{consent_id}/revoke")
def revoke_user_consent(call: FormCall, consent_id: int) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        service.revoke_user_consent(
            db, tenant=ctx.tenant, consent_pk=row_pk(consent_id), actor=ctx.admin.actor
        )
        return Done("The user's consent was revoked.", "/consents")

    return call.run(work, page=CONSENTS)
