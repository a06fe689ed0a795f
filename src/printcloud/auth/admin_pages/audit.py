"""The admin pages' audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..runtime import Runtime
from .base import Ctx, Page, RuntimeDep, TenantQuery, show_page

router = APIRouter()


def _audit(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"events": service.list_audit(db, tenant=ctx.tenant, limit=200)}


AUDIT = Page("admin/audit.html", "audit", "Audit log", _audit)


@router.get("/{issuer}/admin/audit")
def audit(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return show_page(rt, request, issuer, tenant, AUDIT)
