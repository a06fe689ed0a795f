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


# -- the CRM's batch jobs and runs (seed 000, FIG. 6-7, S1501-S1512) -----------------------

#: A record filter's comparison code (the API's `op`) -> what the registration form shows.
OPERATORS: dict[str, str] = {
    "eq": "equals",
    "ne": "is not",
    "lt": "less than",
    "le": "at most",
    "gt": "more than",
    "ge": "at least",
    "contains": "contains",
}

#: How a batch job repeats (its `recurrence`) -> words.
RECURRENCES: dict[str, str] = {
    "once": "Once",
    "daily": "Every day",
    "weekly": "Every week",
    "cron": "On a custom schedule",
}

#: A batch run's outcome -> (badge label, what it means or what to do).
RUN_STATES: dict[str, tuple[str, str]] = {
    "running": ("Running", "The run has started and is asking document generation to print."),
    "completed": (
        "Sent for printing",
        "Document generation accepted the batch; it makes the documents and prints them.",
    ),
    "suspended": (
        "Refused",
        "Document generation refused the batch. Check the secret key, then run the job again.",
    ),
    "failed": ("Failed", "The run could not ask document generation to print."),
}

#: A batch run's step (seed 000's step IDs) -> what happened.
BATCH_STEPS: dict[str, str] = {
    "S1501": "Started",
    "S1502": "Document generation did not answer",
    "S1506": "Secret key looked up",
    "S1509": "Handed to document generation",
    "S1512": "Refused by document generation",
}


def operator_label(op: str) -> str:
    return OPERATORS.get(op, _as_words(op))


def recurrence_label(recurrence: str) -> str:
    return RECURRENCES.get(recurrence, _as_words(recurrence))


def run_label(outcome: str) -> str:
    known = RUN_STATES.get(outcome)
    return known[0] if known else _as_words(outcome)


def run_text(outcome: str) -> str:
    known = RUN_STATES.get(outcome)
    return known[1] if known else ""


def batch_step_label(step: str) -> str:
    return BATCH_STEPS.get(step, "Step")


# -- docgen's batch-print requests (seed 000, FIG. 15-16 and 19) ----------------------------

#: A batch-print request's state -> (badge label, what it means or what to do).
REQUEST_STATES: dict[str, tuple[str, str]] = {
    "received": ("Received", "The request has arrived and waits its turn."),
    "verifying": ("Checking access", "Checking that printing is still allowed."),
    "fetching": ("Getting the data", "Reading the records from the CRM."),
    "rendering": ("Making the documents", "Filling the form with the records."),
    "sending": ("Sending to print", "Handing the documents to the print service."),
    "completed": ("Sent to print", "The documents were handed to the print service."),
    "suspended": (
        "Stopped",
        "The request stopped before everything was printed. Fix what the reason names; "
        "the next scheduled run tries again.",
    ),
    "failed": (
        "Failed",
        "Something went wrong on our side. Ask your administrator to look at the details.",
    ),
}

#: A batch-print request's history step (seed 000's step IDs) -> what happened.
REQUEST_STEPS: dict[str, str] = {
    "S1503": "Request received",
    "S1512": "Request from the CRM accepted (secret key checked)",
    "S1515-S1516": "Stored tokens looked up",
    "S1517-S1518": "Records read from the CRM",
    "S1519": "Documents made from the form",
    "S1520-S1521": "Print access checked",
    "S1522": "Documents sent to the print service",
    "S1525": "Finished",
    "S1601-S1605": "CRM access renewed",
    "S1606": "The CRM did not give the records",
    "S1607-S1611": "Print access renewed",
    "S1612": "Print access refused",
    "S1901": "A person's print request received",
    "S1902": "Records read from the CRM as the person",
    "S1904": "Documents sent to the print service as the person",
}

#: Who sent a batch-print request.
REQUEST_SOURCES = {"crm": "The CRM's schedule", "user": "A person, from the CRM"}


def request_label(state: str) -> str:
    known = REQUEST_STATES.get(state)
    return known[0] if known else _as_words(state)


def request_text(state: str) -> str:
    known = REQUEST_STATES.get(state)
    return known[1] if known else ""


def request_step_label(step: str) -> str:
    return REQUEST_STEPS.get(step, "Step")


def request_source(source: str) -> str:
    return REQUEST_SOURCES.get(source, _as_words(source))


# -- the authorization server's admin pages: grant types, token formats, audit events ------

#: OAuth grant types (RFC 6749 names and the URNs of RFC 8628, RFC 8693 and seed 004's
#: card login) -> what an administrator reads. The values stay in the details.
GRANT_TYPES: dict[str, str] = {
    "authorization_code": "Authorization code",
    "refresh_token": "Refresh token",
    "client_credentials": "Client credentials",
    "password": "Password",
    "urn:ietf:params:oauth:grant-type:device_code": "Device code",
    "urn:ietf:params:oauth:grant-type:token-exchange": "Token exchange",
    "urn:printcloud:params:oauth:grant-type:id-card": "ID card login",
}

#: What a grant type is for, said once beside its name where a client is registered.
GRANT_HINTS: dict[str, str] = {
    "authorization_code": "people sign in in a browser",
    "refresh_token": "stay signed in without asking again",
    "client_credentials": "a server or printer acts as itself",
    "urn:ietf:params:oauth:grant-type:device_code": "sign in on a device by a code shown on it",
    "urn:ietf:params:oauth:grant-type:token-exchange": "swap one token for another service's",
    "urn:printcloud:params:oauth:grant-type:id-card": "a printer signs people in by ID card",
}

#: A client's kind -> a name and what it is.
CLIENT_KINDS: dict[str, tuple[str, str]] = {
    "confidential": ("Server application", "a server application that keeps a secret"),
    "public": ("App without a secret", "an app on a phone or in a browser, signing in with PKCE"),
    "device": ("Printer or device", "a printer or multifunction device"),
    "service": ("Platform service", "one of the platform's own services"),
}

#: A client's access-token format (issue 17) -> a name and what it means.
TOKEN_FORMATS: dict[str, tuple[str, str]] = {
    "opaque": (
        "Opaque",
        "a random string: services ask the sign-in service about each token, "
        "and revoking it takes effect at once",
    ),
    "jwt": (
        "Signed JWT",
        "a signed token (RFC 9068) that services check themselves, without asking the "
        "sign-in service; revoking it takes effect when it expires, within minutes",
    ),
}

#: The JWS algorithms of JWT access tokens -> a name.
JWT_ALGORITHMS: dict[str, str] = {
    "EdDSA": "EdDSA (Ed25519)",
    "ES256": "ES256 (ECDSA P-256)",
}

#: Audit events -> what happened, in words.
AUDIT_EVENTS: dict[str, str] = {
    "login": "Signed in",
    "tenant.create": "Organisation created",
    "tenant.delete": "Organisation deleted",
    "tenant.settings": "Settings changed",
    "user.create": "User added",
    "user.update": "User changed",
    "user.delete": "User deleted",
    "client.create": "Client registered",
    "client.update": "Client changed",
    "client.rotate_secret": "Client secret replaced",
    "client.delete": "Client deleted",
    "consent.allow": "Access allowed",
    "consent.deny": "Access denied",
    "consent.skipped": "Access allowed without asking",
    "consent.tenant.grant": "Allowed for the whole organisation",
    "consent.tenant.revoke": "Organisation-wide consent revoked",
    "consent.user.revoke": "Consent revoked",
    "device.allow": "Device allowed",
    "device.deny": "Device denied",
    "card.registered": "ID card registered",
    "card.moved": "ID card moved to another user",
    "card.deleted": "ID card deleted",
    "card.expired": "ID card deleted after its period",
    "card.retention": "ID card period changed",
    "directory.set": "Directory changed",
    "token.refresh_reuse": "A used refresh token came back: its sign-in was ended",
}

#: Keys of an audit event's details -> their names.
AUDIT_KEYS: dict[str, str] = {
    "ip": "IP address",
    "because": "Because",
    "scope": "Permissions",
    "remember": "Remembered",
    "tenant_wide": "For the whole organisation",
    "kind": "Kind",
    "grant_types": "Grant types",
    "access_token_format": "Access token format",
    "access_token_alg": "JWT algorithm",
    "card": "Card",
    "from": "From",
    "directory": "Directory",
    "last_login_at": "Last login",
    "retention_days": "Kept for days",
    "days": "Days",
    "url": "Server URL",
    "base_dn": "Base DN",
    "is_admin": "Administrator",
    "display_name": "Display name",
    "password": "Password",
    "disabled": "Disabled",
    "name": "Name",
    "redirect_uris": "Redirect URIs",
    "held_release": "Held jobs released by",
    "card_retention_days": "ID cards kept for days",
    "local_auth_cooperation": "Local authentication cooperation",
    "users_may_grant_tenant_consent": "Users may consent for everyone",
    "consent": "Consent",
}


#: Coded values of some details -> words (key -> value -> words).
AUDIT_VALUES: dict[str, dict[str, str]] = {
    "directory": {"builtin": "This organisation's users", "ldap": "LDAP"},
    "held_release": {
        "card_or_owner": "The user, by ID card or their own sign-in",
        "device_local_auth": "Also the user a printer says is signed in",
    },
    "because": {
        "first_party": "One of the platform's own pages",
        "tenant": "Allowed for the whole organisation",
        "user": "The user allowed it before",
    },
}


def grant_label(grant: str) -> str:
    """A grant type's name; an unknown URN by its last part, as words."""
    return GRANT_TYPES.get(grant) or _as_words(grant.rsplit(":", 1)[-1])


def grant_labels(grants: list[str]) -> str:
    """A client's grant types by name, in a list: "Client credentials, Refresh token"."""
    return ", ".join(grant_label(g) for g in grants)


def kind_label(kind: str) -> str:
    known = CLIENT_KINDS.get(kind)
    return known[0] if known else _as_words(kind)


def token_format_label(fmt: str, alg: str | None = None) -> str:
    """ "Opaque", or "Signed JWT, EdDSA (Ed25519)"."""
    known = TOKEN_FORMATS.get(fmt)
    label = known[0] if known else _as_words(fmt)
    if fmt == "jwt" and alg:
        label += ", " + JWT_ALGORITHMS.get(alg, alg)
    return label


def event_label(action: str) -> str:
    """An audit event in words; an unknown one from its code ("a.b_c" -> "A b c")."""
    return AUDIT_EVENTS.get(action) or _as_words(action.replace(".", " "))


def actor_label(actor: str, clients: dict[str, str] | None = None) -> str:
    """Who did it: "user:alice" -> "alice"; a client or device by its name in `clients`
    (client ID -> name) when known, else by its ID."""
    kind, _, name = actor.partition(":")
    if not name:
        return {"system": "The platform", "cli": "Command line", "demo": "The demo"}.get(
            actor, actor
        )
    if kind in ("user", "local_user"):
        return name
    named = (clients or {}).get(name, name)
    return {"client": f"Client {named}", "device": f"Printer {named}"}.get(kind, actor)


def detail_value(key: str, value: object) -> str:
    """One detail's value as text: yes/no, lists joined, grant types by name."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        items = [grant_label(str(v)) if key == "grant_types" else str(v) for v in value]
        return ", ".join(items) or "—"
    if isinstance(value, dict):
        pairs = (f"{detail_key(str(k))}: {detail_value(str(k), v)}" for k, v in value.items())
        return "; ".join(pairs)
    text = str(value)
    if text in AUDIT_VALUES.get(key, {}):
        return AUDIT_VALUES[key][text]
    if key == "access_token_format":
        return token_format_label(text)
    if key == "kind":
        return kind_label(text)
    return text


def detail_key(key: str) -> str:
    return AUDIT_KEYS.get(key) or _as_words(key)


def audit_details(details: dict[str, object] | None) -> list[tuple[str, str]]:
    """An audit event's details as (name, value) pairs to list, in their order."""
    return [(detail_key(k), detail_value(k, v)) for k, v in (details or {}).items()]


# -- color on a printer without color ------------------------------------------------------

#: Beside the print form's color choice.
MONO_HINT = "A black-and-white printer prints in black and white only."
#: On the page of a job asked in color for a printer without color.
MONO_PRINTED = "Printed in black and white: this printer has no colour."

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
