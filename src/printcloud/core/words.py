"""Plain words for what the platform records in codes: a print job's states, the
reasons it stopped, and the steps of its history (seed 003, FIG. 3-11: S105-S112,
SVC001-SVC002). One map, used by the web pages and the CLI's tables (and later by
IPP's `job-state-message`). The codes themselves stay in the data and the APIs;
people see these words, administrators also the codes in a "details" section.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Job state -> (short label for a badge, a sentence saying what it means or what to do).
STATES: dict[str, tuple[str, str]] = {
    "accepted": ("Received", "We have your document and are getting it ready."),
    "held": ("Held", "It prints when you release it at a printer."),
    "token_issued": ("Getting ready", "We are getting your document ready for the printer."),
    "downloaded": ("Getting ready", "We are getting your document ready for the printer."),
    "converted": ("Ready", "Your document is ready for the printer."),
    "waiting_for_printer": (
        "Waiting for the printer",
        "The printer has not taken the job yet. It prints when the printer is on and online.",
    ),
    "printing": ("Printing", "The printer is printing your document."),
    "printed": ("Printed", "Your document has been printed."),
    "download_failed": (
        "Could not get the document",
        "The document could not be fetched. Check the file or its address and print again.",
    ),
    "conversion_failed": (
        "Could not prepare the document",
        "The document could not be prepared for printing. Check that it is a valid PDF.",
    ),
    "printer_cancelled": ("Stopped at the printer", "The printer stopped the job."),
    "cancelled": ("Cancelled", "The job was cancelled."),
    "expired": ("Expired", "The job was not printed in time and has been removed."),
    "failed": ("Failed", "Something went wrong while printing. Try printing again."),
}

#: A printer's or the platform's reason codes -> a sentence with what to do.
REASONS: dict[str, str] = {
    "paper_out": "The printer ran out of paper. Add paper, then print the rest again.",
    "toner_out": "The printer ran out of toner. Replace it, then print again.",
    "engine_error": "The printer reported a fault. Ask your administrator to check it.",
    "user_cancel": "Someone cancelled the job at the printer.",
    "not released in time": "You did not release it at a printer in time.",
    "cancelled at the printer": "Someone cancelled the job at the printer.",
}

#: A history step (seed 003's step IDs and the intake's own) -> what happened.
STEPS: dict[str, str] = {
    "S105": "Received",
    "S106": "Prepared for conversion",
    "S107": "Document fetched",
    "S108": "Prepared for the printer",
    "S109": "Sent to the printer",
    "S110": "At the printer",
    "S111": "Result recorded",
    "S112": "Temporary files removed",
    "SVC001": "Changed",
    "SVC002": "Stopped",
}


def state_label(state: str) -> str:
    """A state's short label; an unknown code shown as words ("a_b" -> "A b")."""
    known = STATES.get(state)
    return known[0] if known else _as_words(state)


def state_text(state: str) -> str:
    """A sentence saying what a state means."""
    known = STATES.get(state)
    return known[1] if known else ""


def reason_text(reason: str | None) -> str:
    """A reason as a sentence: a known code (alone or as `code: message`) in plain
    words, free text as it is, starting with a capital."""
    if not reason:
        return ""
    reason = reason.strip()
    code, _, rest = reason.partition(":")
    if reason in REASONS:
        return REASONS[reason]
    if code.strip() in REASONS:
        extra = rest.strip()
        return REASONS[code.strip()] + (f" ({extra})" if extra else "")
    return reason[:1].upper() + reason[1:]


def step_label(step: str) -> str:
    return STEPS.get(step, "Step")


@dataclass(frozen=True)
class Said:
    """A job's state as a person reads it: a badge label, a sentence and the reason."""

    label: str
    text: str
    reason: str


def job_said(state: str, reason: str | None) -> Said:
    return Said(state_label(state), state_text(state), reason_text(reason))


def _as_words(code: str) -> str:
    words = code.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


# -- printers: online or not, and why a job waits ----------------------------------------


def printer_status(online: bool, last_seen: str | None) -> str:
    """A printer's status: "Online", "Offline since …", or never connected."""
    if online:
        return "Online"
    if last_seen:
        return f"Offline since {last_seen}"
    return "Offline: never connected"


def waiting_text(printer: str, online: bool, last_seen: str | None) -> str:
    """Why a job waits for its printer, and what happens next."""
    if online:
        return f"Waiting: the printer {printer} is online and takes the job at its next check."
    if last_seen:
        return (
            f"Waiting: the printer {printer} has been offline since {last_seen}. "
            "The job prints when it is back online; ask your administrator if it stays offline."
        )
    return (
        f"Waiting: the printer {printer} has never connected. "
        "Ask your administrator to set it up; the job prints once it is online."
    )


#: The actions offered on a job that ended before all its pages were printed.
PRINT_REMAINING = "Print the remaining pages"
PRINT_AGAIN = "Print again"


def remaining_text(printed: int, pages: int) -> str:
    return f"{printed} of {pages} pages were printed."


# -- a person's print request from the CRM (seed 000, FIG. 19) -----------------------------

#: docgen's request state -> (badge label, what it means for the person who asked).
PRINT_REQUESTS: dict[str, tuple[str, str]] = {
    "received": ("Received", "Your print request has arrived and starts in a moment."),
    "verifying": ("Checking your sign-in", "We are checking that you may print."),
    "fetching": ("Reading the records", "We are reading the records you chose."),
    "rendering": ("Making the documents", "We are making the documents from the records."),
    "sending": ("Sending to the printer", "The documents are on their way to the printer."),
    "completed": (
        "Sent to the printer",
        "Every document was handed to the printer. Each print job below shows the paper.",
    ),
    "suspended": ("Stopped", "Nothing more will be printed for this request."),
    "failed": (
        "Failed",
        "Something went wrong on our side. Try again; if it keeps failing, "
        "tell your administrator.",
    ),
}
#: The states in which a print request still moves.
PRINT_REQUEST_ACTIVE = ("received", "verifying", "fetching", "rendering", "sending")


def print_request_said(state: str, reason: str | None) -> Said:
    """A print request's state as its person reads it."""
    label, text = PRINT_REQUESTS.get(state, (_as_words(state), ""))
    return Said(label, text, reason_text(reason))
