"""The audit trail: who did what, in which tenant; and a row counter for the admin pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AuditEvent, Tenant


def audit(
    db: Session,
    *,
    tenant: Tenant | None,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    issuer: str | None = None,
) -> None:
    """Record who did what. The issuer is the tenant's, unless there is no tenant."""
    if issuer is None:
        if tenant is None:
            raise ValueError("an audit event without a tenant needs its issuer")
        issuer = tenant.issuer
    db.add(
        AuditEvent(
            issuer=issuer,
            tenant_pk=tenant.pk if tenant else None,
            actor=actor,
            action=action,
            target=target,
            details=details or {},
        )
    )


def list_audit(db: Session, *, tenant: Tenant, limit: int = 100) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_pk == tenant.pk)
            .order_by(AuditEvent.at.desc(), AuditEvent.pk.desc())
            .limit(limit)
        )
    )


def count_rows(db: Session, model: type[Any], *conditions: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)
