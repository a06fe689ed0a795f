"""What a CRM may choose from when its people register a batch job (seed 000, FIG. 6,
area 604): the forms docgen renders for the tenant (built-in and the tenant's own) and
the printers the tenant's stored print token sees at the print service (S1522 prints
with that token, so these are the printers a batch can reach).

Asked by the CRM with the batch-print request's credentials (Digest, S1503–S1509);
a refusal here starts no batch, so it is not recorded as a suspended one (S1512).
"""

from __future__ import annotations

from printcloud.core.errors import Unavailable
from printcloud.core.logs import get_logger
from printcloud.printing.client import PrintClient, PrintServiceError, PrintServiceUnreachable

from . import batch, service, tenant_forms, tokens
from .runtime import DocgenRuntime
from .schemas import BatchChoices, PrinterChoice

log = get_logger("docgen.choices")

NO_PRINT_ACCESS = (
    "document generation has no print token for this organisation yet: its administrator "
    "gets one on the batch-printing settings page"
)
PRINT_SERVICE_DOWN = "the print service does not answer; try again in a moment"
PRINT_ACCESS_REFUSED = (
    "the print service no longer accepts document generation's print token: its "
    "administrator gets a new one on the batch-printing settings page"
)


def _printers(rt: DocgenRuntime, tenant_id: str) -> tuple[list[PrinterChoice] | None, str]:
    """The printers the stored print token sees, refreshed once when it has expired;
    (None, why) when they cannot be listed."""
    with rt.db.session() as db:
        stored = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
    if stored is None:
        return None, NO_PRINT_ACCESS
    printing = PrintClient(f"{rt.public_url}/printing", http=rt.http)
    access = stored.access_token
    for attempt in range(2):
        try:
            found = printing.printers(token=access)
        except PrintServiceUnreachable:
            return None, PRINT_SERVICE_DOWN
        except PrintServiceError as exc:
            if exc.status != 401 or attempt:
                log.info(
                    "printers not listed",
                    extra={"fields": {"tenant": tenant_id, "status": exc.status}},
                )
                return None, PRINT_ACCESS_REFUSED
            try:
                access = tokens.refresh_print(
                    rt, tenant_id=tenant_id, stale_access=access
                ).access_token
            except tokens.TokenRefused:
                return None, PRINT_ACCESS_REFUSED
            except Unavailable:
                return None, PRINT_SERVICE_DOWN
            continue
        return [
            PrinterChoice(
                printer_id=str(p["printer_id"]),
                name=str(p.get("name") or p["printer_id"]),
                color=bool(p.get("color", True)),
                location=str(p.get("location") or ""),
            )
            for p in found
        ], ""
    return None, PRINT_ACCESS_REFUSED


def batch_choices(rt: DocgenRuntime, *, tenant_id: str) -> BatchChoices:
    own = tenant_forms.list_forms(rt.blobs, tenant_id=tenant_id)
    printers, problem = _printers(rt, tenant_id)
    return BatchChoices(
        builtin_forms=list(batch.BATCH_FORMS),
        forms=[f.name for f in own],
        printers=printers,
        printers_problem=problem,
    )
