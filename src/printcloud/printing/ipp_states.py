"""printcloud job states and reasons as IPP `job-state` and `job-state-reasons` (issue 14,
RFC 8011 §5.3.7 and §5.3.8; `job-fetchable` from PWG 5100.18 §6.3).

One table, `JOB_STATES`, read by the IPP handlers and reproduced in docs/ipp.md: the
printcloud state (see `service.py` for its life) → IPP state and reasons. A printer's
cancellation is refined by the printer's reason (`PRINTER_REASONS`).
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 8011 §5.3.7 job-state enum values
PENDING, PENDING_HELD, PROCESSING, PROCESSING_STOPPED = 3, 4, 5, 6
CANCELED, ABORTED, COMPLETED = 7, 8, 9


@dataclass(frozen=True)
class IppJobState:
    state: int
    reasons: tuple[str, ...]


JOB_STATES: dict[str, IppJobState] = {
    "accepted": IppJobState(PENDING, ("job-queued",)),
    "held": IppJobState(PENDING_HELD, ("job-hold-until-specified",)),
    "token_issued": IppJobState(PROCESSING, ("job-transforming",)),
    "downloaded": IppJobState(PROCESSING, ("job-transforming",)),
    "converted": IppJobState(PROCESSING, ("job-transforming",)),
    # converted, waiting for its printer to fetch it (seed 003 S109, ¶0112)
    "waiting_for_printer": IppJobState(PROCESSING, ("job-fetchable",)),
    "printing": IppJobState(PROCESSING, ("job-printing",)),
    "printed": IppJobState(COMPLETED, ("job-completed-successfully",)),
    "download_failed": IppJobState(ABORTED, ("aborted-by-system", "document-access-error")),
    "conversion_failed": IppJobState(ABORTED, ("aborted-by-system", "document-format-error")),
    "printer_cancelled": IppJobState(ABORTED, ("aborted-by-system",)),
    "cancelled": IppJobState(CANCELED, ("job-canceled-by-user",)),
    # the printer did not take it before its conversion token timed out (FIG. 10)
    "expired": IppJobState(ABORTED, ("aborted-by-system",)),
    "failed": IppJobState(ABORTED, ("aborted-by-system",)),
}

#: `printer_cancelled` with the printer's reason (`service.PRINTER_FAULTS`).
PRINTER_REASONS: dict[str, IppJobState] = {
    "paper_out": IppJobState(ABORTED, ("media-empty-error",)),
    "toner_out": IppJobState(ABORTED, ("marker-supply-empty-error",)),
    "engine_error": IppJobState(ABORTED, ("aborted-by-system", "printer-stopped")),
    "user_cancel": IppJobState(CANCELED, ("canceled-at-device",)),
}


def ipp_state(state: str, reason: str | None) -> IppJobState:
    """The IPP state and reasons of a job in printcloud `state` (with its `reason`)."""
    if state == "printer_cancelled" and reason:
        fault = reason.split(":", 1)[0].strip()
        if fault in PRINTER_REASONS:
            return PRINTER_REASONS[fault]
    return JOB_STATES.get(state, IppJobState(ABORTED, ("aborted-by-system",)))
