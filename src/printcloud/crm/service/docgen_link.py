"""The CRM's link to docgen (seed 000, FIG. 9, S1407–S1412).

The docgen tenant ID (one-to-one with the CRM tenant) and the secret key, sealed
at rest and never given back but to the job that signs with it (S1506–S1508).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from ..models import DocgenLinkRow
from .records import (
    ID_PATTERN,
)

# -- the docgen link (FIG. 9, S1407–S1412) -------------------------------------------------


@dataclass(frozen=True)
class DocgenCredentials:
    """What a batch run signs its Digest response with (S1506–S1508)."""

    docgen_tenant_id: str
    secret_key: str = field(repr=False)


def set_docgen_link(
    db: Session,
    *,
    tenant_id: str,
    docgen_tenant_id: str,
    secret_key: str,
    by: str,
    box: SecretBox,
) -> DocgenLinkRow:
    """S1411–S1412: store the secret key, sealed, with the docgen tenant ID it belongs to.
    One docgen tenant per CRM tenant and the other way round."""
    docgen_tenant_id = docgen_tenant_id.strip() if isinstance(docgen_tenant_id, str) else ""
    if not ID_PATTERN.match(docgen_tenant_id) or len(docgen_tenant_id) > 64:
        raise InvalidRequest(
            "docgen_tenant_id must be 1-64 letters, digits, '.', '_' or '-'",
            field="docgen_tenant_id",
        )
    key = secret_key.strip() if isinstance(secret_key, str) else ""
    if not 16 <= len(key) <= 256 or any(not 33 <= ord(c) <= 126 for c in key):
        raise InvalidRequest(
            "secret_key must be the key docgen showed: 16-256 printable characters, no spaces",
            field="secret_key",
        )
    taken = db.scalar(
        select(DocgenLinkRow.pk).where(
            DocgenLinkRow.docgen_tenant_id == docgen_tenant_id,
            DocgenLinkRow.tenant_id != tenant_id,
        )
    )
    if taken is not None:
        raise Conflict(
            "that docgen tenant is already linked to another CRM tenant",
            field="docgen_tenant_id",
        )
    row = db.scalar(select(DocgenLinkRow).where(DocgenLinkRow.tenant_id == tenant_id))
    if row is None:
        row = DocgenLinkRow(tenant_id=tenant_id)
        db.add(row)
    row.docgen_tenant_id = docgen_tenant_id
    row.secret_sealed = box.seal(key)
    row.set_at = utcnow()
    row.set_by = by[:200]
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict(
            "that docgen tenant is already linked to another CRM tenant",
            field="docgen_tenant_id",
        ) from exc
    return row


def get_docgen_link(db: Session, *, tenant_id: str) -> DocgenLinkRow:
    row = db.scalar(select(DocgenLinkRow).where(DocgenLinkRow.tenant_id == tenant_id))
    if row is None:
        raise NotFound("no docgen tenant and secret key are registered", field="docgen_link")
    return row


def delete_docgen_link(db: Session, *, tenant_id: str) -> None:
    db.delete(get_docgen_link(db, tenant_id=tenant_id))


def docgen_credentials(db: Session, *, tenant_id: str, box: SecretBox) -> DocgenCredentials:
    """S1506–S1507: the tenant's docgen tenant ID and secret key, unsealed."""
    row = get_docgen_link(db, tenant_id=tenant_id)
    return DocgenCredentials(row.docgen_tenant_id, box.open(row.secret_sealed))
