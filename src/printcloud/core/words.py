"""Plain words for what the platform records in codes: a print job's states, the
reasons it stopped, and the steps of its history (seed 003, FIG. 3-11: S105-S112,
SVC001-SVC002). One map, used by the web pages and the CLI's tables (and later by
IPP's `job-state-message`). The codes themselves stay in the data and the APIs;
people see these words, administrators also the codes in a "details" section.
"""

from __future__ import annotations

import re
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


#: S108 of a job whose printer takes the PDF as it is (PDF pass-through, issue 15): the
#: JPEG pages are made beside the printing, for the page previews, and recorded in the
#: state the job is in by then (the seed's S108 is `converted` or `conversion_failed`).
PASSTHROUGH_S108 = "Page previews (the printer prints your PDF as it is)"


def step_label(step: str, state: str = "") -> str:
    if step == "S108" and state not in ("", "converted", "conversion_failed"):
        return PASSTHROUGH_S108
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


# -- webhooks (issue 18) ------------------------------------------------------------------

#: A webhook event type -> what a person ticks to receive it.
WEBHOOK_EVENTS: dict[str, str] = {
    "job.accepted": "A print job is received",
    "job.held": "A print job waits to be released at a printer",
    "job.printing": "A printer starts a print job",
    "job.printed": "A print job is printed",
    "job.cancelled": "A print job is cancelled (by its owner or at the printer), with why",
    "job.failed": "A print job ends without printing, with why",
    "batch.completed": "A nightly batch print hands its documents to the printers",
    "batch.suspended": "A nightly batch print stops, with why",
    "account.low_balance": "A printing account runs low",
    "webhook.test": "Test event",
}
#: A delivery's state -> (badge label, what it means).
WEBHOOK_DELIVERIES: dict[str, tuple[str, str]] = {
    "pending": ("Waiting", "Waiting for its turn: an earlier event of the same job goes first."),
    "sending": ("Sending", "Being sent; a failed try is tried again later."),
    "delivered": ("Delivered", "The receiver accepted it."),
    "failed": ("Not delivered", "Every try over about a day failed."),
    "skipped": ("Not sent", "The webhook was turned off or deleted before it was sent."),
}
#: What was done to a webhook (its audit trail).
WEBHOOK_ACTIONS: dict[str, str] = {
    "added": "Added",
    "changed": "Changed",
    "rotated": "New signing secret",
    "tested": "Test event sent",
    "enabled": "Turned on",
    "disabled": "Turned off",
    "auto_disabled": "Turned off by the platform after failing",
    "deleted": "Deleted",
}


def webhook_event_label(event_type: str) -> str:
    return WEBHOOK_EVENTS.get(event_type) or _as_words(event_type.replace(".", " "))


def webhook_delivery_said(state: str) -> tuple[str, str]:
    return WEBHOOK_DELIVERIES.get(state, (_as_words(state), ""))


def webhook_action_label(action: str) -> str:
    return WEBHOOK_ACTIONS.get(action) or _as_words(action)


def webhook_answer(status_code: int | None, error: str) -> str:
    """A delivery attempt's outcome: "Accepted (204)", "Refused (500)" or why none came."""
    if status_code is None:
        return error[:1].upper() + error[1:] if error else "No answer"
    if 200 <= status_code < 300:
        return f"Accepted ({status_code})"
    return f"Refused ({status_code})"


# -- refusals of the admin forms, as a person reads them (issue 16, "Errors") --------------

_LDAP_ADDRESS = (
    "Enter the directory server's address as ldap://host or ldaps://host, with :port if needed."
)
_LDAP_NAME = (
    "Enter an LDAP name: letters, digits and dashes, starting with a letter (for example uid)."
)
_SAME_TIME = "Someone else changed this at the same moment. Look at the page and try again."

#: A refusal of an admin form as the services word it for API clients (the field it names,
#: or None for any, and a regular expression of its words) -> the sentence a person reads.
#: A `{name}` in the sentence is the expression's group of that name. First match wins;
#: the API's own wording stays as it is.
FORM_ERRORS: tuple[tuple[str | None, str, str], ...] = (
    # users
    (
        "username",
        r"^username must be",
        "Use 1 to 128 letters, digits or . _ @ + - for the user name, without spaces.",
    ),
    (
        "username",
        r"^user '(?P<name>[^']*)' already exists",
        "A user called {name} already exists. Choose another user name.",
    ),
    (
        "username",
        r"already exists",
        "A user with this user name already exists. Choose another user name.",
    ),
    (
        "username",
        r"cannot delete your own account",
        "You cannot delete your own account. Another administrator can.",
    ),
    (
        "disabled",
        r"cannot disable your own account",
        "You cannot disable your own account: you would lock yourself out.",
    ),
    (
        "is_admin",
        r"cannot remove your own administrator role",
        "You cannot take away your own administrator role. Another administrator can.",
    ),
    (
        "password",
        r"at least (?P<n>\d+) characters",
        "Choose a password of at least {n} characters.",
    ),
    ("password", r"at most (?P<n>\d+) characters", "Choose a password of at most {n} characters."),
    (None, r"^no user '|^no such user", "There is no such user in this organisation."),
    # the organisation's settings, and new organisations
    ("card_retention_days", r"1 to 3650", "Enter a number of days from 1 to 3650."),
    ("held_release", r"must be one of", "Choose who may release held jobs."),
    (
        "tenant_id",
        r"^tenant_id must be",
        "Use 1 to 64 letters, digits, dots, dashes or underscores for the organisation ID.",
    ),
    (
        "tenant_id",
        r"already exists",
        "An organisation with this ID already exists. Choose another ID.",
    ),
    (
        "tenant_id",
        r"system tenant cannot be deleted",
        "The platform's own organisation cannot be deleted.",
    ),
    # the directory (LDAP) and "test connection"
    (
        "kind",
        r"^kind must be builtin or ldap",
        "Choose this organisation's own users or an LDAP directory.",
    ),
    (
        "kind",
        r"own user store",
        "This organisation uses its own users: there is no directory to test. Choose LDAP and "
        "save first.",
    ),
    (
        "url",
        r"names a server only",
        "Enter the server only, as ldap://host:port, without a path or a user name.",
    ),
    (
        "url",
        r"user name or password",
        "Leave the user name and password out of the address: enter the service account below.",
    ),
    ("url", r"ldap://|not a valid URL|not an LDAP URL|must be an absolute", _LDAP_ADDRESS),
    (
        "url",
        r"^url: (?P<why>.+?)\.?$",
        "This address cannot be used: {why}.",
    ),
    (
        "base_dn",
        r"is required",
        "Enter the base DN where the users are, for example ou=people,dc=example,dc=org.",
    ),
    (
        "base_dn",
        r"not a distinguished name",
        "The base DN is not a valid distinguished name; write it like ou=people,dc=example,dc=org.",
    ),
    ("user_attr", r"attribute name", _LDAP_NAME),
    ("object_class", r"attribute name", _LDAP_NAME),
    ("name_attr", r"attribute name", _LDAP_NAME),
    ("mail_attr", r"attribute name", _LDAP_NAME),
    (
        "bind_password",
        r"required with bind_dn",
        "Enter the service account's password, or leave the service account empty to search "
        "without one.",
    ),
    (
        "bind_password",
        r"cannot be decrypted",
        "The saved password of the service account can no longer be read. Enter it again and save.",
    ),
    (
        "bind_dn",
        r"not a distinguished name",
        "The service account is not a valid distinguished name; write it like "
        "cn=reader,dc=example,dc=org.",
    ),
    ("timeout", r"seconds", "Enter a number of seconds from 1 to 60."),
    (
        "start_tls",
        r"ldaps:// is TLS already",
        "Leave StartTLS off with an ldaps:// address: that connection is encrypted already.",
    ),
    (
        "ca_pem",
        r"not encrypted",
        "CA certificates are only used on an encrypted connection: use an ldaps:// address or "
        "StartTLS.",
    ),
    ("ca_pem", r"holds at most (?P<n>\d+)", "Paste at most {n} certificates."),
    (
        "ca_pem",
        r"is at most",
        "The CA certificates are too long: paste only the ones that sign the directory's "
        "certificate.",
    ),
    (
        "ca_pem",
        r"not PEM",
        "Paste the CA certificates as text, each from -----BEGIN CERTIFICATE----- to -----END "
        "CERTIFICATE-----.",
    ),
    (
        "ca_pem",
        r"cannot be used as CA",
        "These certificates cannot be used to check the directory's certificate.",
    ),
    (
        None,
        r"^directory unavailable: (?P<why>.+)",
        "The directory did not answer as it should: {why}. Check the settings and try again.",
    ),
    # clients
    ("name", r"must not be empty", "Enter a name."),
    ("kind", r"^kind must be one of", "Choose what kind of client it is."),
    (
        "kind",
        r"service clients belong",
        "Platform services belong to the platform's own organisation.",
    ),
    ("grant_types", r"unknown grant type", "Choose the grant types from the list."),
    (
        "grant_types",
        r"public client cannot use",
        "An app without a secret cannot use client credentials or token exchange.",
    ),
    (
        "redirect_uris",
        r"needs at least one redirect URI",
        "Browser sign-in (authorization code) needs at least one redirect URI.",
    ),
    (
        "redirect_uris",
        r"must be absolute",
        "Enter each redirect URI as a full address (https://…) or an app's own scheme "
        "(com.example.app:/…), without a # part.",
    ),
    (
        "scope",
        r"only for the platform's own service",
        "This permission is only for the platform's own services.",
    ),
    ("scope", r"unknown scope", "Choose the scopes from the list."),
    (
        "client_id",
        r"^client_id must be",
        "Use letters, digits, dots, dashes or underscores for the client ID.",
    ),
    ("client_id", r"already exists", "A client with this ID already exists. Choose another ID."),
    (
        "client_id",
        r"platform service client",
        "This is one of the platform's own services: printcloud manages it, so it cannot be "
        "changed here.",
    ),
    (
        "client_id",
        r"public client has no secret",
        "An app without a secret has no secret to replace.",
    ),
    (None, r"^no client\b|^no such client", "There is no such client in this organisation."),
    ("access_token_format", r"must be one of", "Choose one of the token formats in the list."),
    ("access_token_alg", r"must be one of", "Choose one of the algorithms in the list."),
    # ID cards and consents
    (
        None,
        r"^no (such )?card\b",
        "That card is not registered any more: it may have been deleted already.",
    ),
    (
        None,
        r"^no (tenant |user )?consent\b",
        "That consent no longer exists: it may have been revoked already.",
    ),
    (
        "tenant_wide",
        r"may not grant consent",
        "This user may not allow access for the whole organisation.",
    ),
    # any form
    (None, r"conflicts with another one made at the same time", _SAME_TIME),
    (None, r"NUL characters", "Remove the control characters from what you typed."),
    (None, r"must be one of", "Choose one of the options in the list."),
)

#: Field codes an unmapped refusal may name -> the words of the form's label.
FORM_FIELDS: dict[str, str] = {
    **AUDIT_KEYS,
    "username": "user name",
    "tenant_id": "organisation ID",
    "client_id": "client ID",
    "base_dn": "base DN",
    "bind_dn": "service account",
    "bind_password": "service account password",
    "user_attr": "user name attribute",
    "object_class": "object class",
    "name_attr": "name attribute",
    "mail_attr": "e-mail attribute",
    "start_tls": "StartTLS",
    "ca_pem": "CA certificates",
    "timeout": "timeout",
    "grant_types": "grant types",
    "redirect_uris": "redirect URIs",
    "scope": "scopes",
    "tenant_wide": "whole organisation",
    "printer_id": "printer ID",
    "job_privacy": "job privacy",
    "on_insufficient": "when a job cannot be paid",
    "low_balance": "low balance warning",
    "duplex_mono": "two-sided black and white",
    "duplex_color": "two-sided colour",
}

# -- accounting (issue 18) ---------------------------------------------------------------

MOVEMENTS = {
    "reserve": "Set aside for a job",
    "charge": "Job settled: what printed charged, the rest given back",
    "topup": "Money paid in",
    "allowance": "Allowance",
    "adjust": "Correction by an administrator",
    "refund": "Refund",
}
PERIODS = {
    "none": "No allowance",
    "daily": "Every day",
    "weekly": "Every Monday",
    "monthly": "On the first of the month",
}
ALLOWANCE_MODES = {
    "topup": "added to the balance",
    "reset": "the balance is set to it",
}
ON_INSUFFICIENT = {
    "refuse": "Refuse the job and say why",
    "hold": "Hold the job until it can be paid",
}
ACCOUNT_KINDS = {"user": "Person", "group": "Group", "shared": "Shared by everyone"}


def movement_label(kind: str) -> str:
    return MOVEMENTS.get(kind, _as_words(kind))


def allowance_text(amount: str, period: str, mode: str) -> str:
    """`2.00 EUR, every Monday, added to the balance`, or "No allowance"."""
    if period == "none":
        return PERIODS["none"]
    return f"{amount}, {PERIODS.get(period, period).lower()}, {ALLOWANCE_MODES.get(mode, mode)}"


_FIELD_CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def form_error(description: str, field: str | None = None) -> str:
    """A refusal of a form as a sentence a person reads: the plain phrasing of
    `FORM_ERRORS`, else the refusal with its field codes as the form names them and
    "tenant" as "organisation". A sentence the pages wrote themselves stays as it is."""
    text = description.strip()
    if text[:1].isupper() and "_" not in text:
        return text
    for of, pattern, plain in FORM_ERRORS:
        if of is not None and of != field:
            continue
        found = re.search(pattern, text)
        if found:
            return plain.format(**found.groupdict())
    text = _FIELD_CODE.sub(
        lambda m: FORM_FIELDS.get(m.group(0), m.group(0).replace("_", " ")), text
    )
    text = re.sub(r"\btenant\b", "organisation", text)
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")
