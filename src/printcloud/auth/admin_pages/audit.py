"""The admin pages' audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..runtime import Runtime
from .base import Ctx, Page, PageCall

router = APIRouter()


def _audit(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    # clients and devices are named by their names, not their IDs (the IDs stay in the API)
    names = {c.client_id: c.name for c in service.list_clients(db, tenant=ctx.tenant)}
    return {"events": service.list_audit(db, tenant=ctx.tenant, limit=200), "client_names": names}


AUDIT = Page("admin/audit.html", "audit", "Audit log", _audit)


@router.get("/{issuer}/admin/audit")
def audit(call: PageCall) -> Response:
    return call.show(AUDIT)
