"""The IPP model (RFC 8011): operation and status codes, enums, attribute syntaxes.

What a print server needs to speak about IPP objects, without the wire format
(that is `encoding.py`, RFC 8010):

- `Operation` — operation-id values (RFC 8011 §5.4.15 and the IANA IPP registry:
  RFC 3995/3996, PWG 5100.5/5100.11/5100.13/5100.18/5100.22; CUPS' own 0x4001-).
- `Status` — status-code values (RFC 8011 Appendix B and the registry).
- `JobState` (§5.3.7), `PrinterState` (§5.4.11), `Finishings` (§5.2.6, PWG 5100.1),
  `OrientationRequested` (§5.2.10), `PrintQuality` (§5.2.13), `ResolutionUnits`
  (§5.1.16) — the `enum` syntax values an IPP Everywhere printer uses.
- The syntaxes that are not plain Python values (§5.1): `Resolution`, `Range`
  (rangeOfInteger), `TextWithLanguage`, `NameWithLanguage`, and the out-of-band
  values `OutOfBand` (RFC 8010 §3.5.2: unsupported, unknown, no-value, and
  RFC 3380's not-settable, delete-attribute, admin-define). Integers are `int`,
  booleans `bool`, text/name/keyword/uri/charset/naturalLanguage/mimeMediaType
  `str`, octetString `bytes`, dateTime an aware `datetime` (deci-second
  precision on the wire), collections `message.Collection`.
- Which attribute names the `requested-attributes` groups `job-template`,
  `job-description` and `printer-description` stand for (§4.2.5.1, §5.2-§5.4):
  `JOB_TEMPLATE`, `JOB_DESCRIPTION`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Operation(IntEnum):
    """operation-id (RFC 8011 §5.4.15, IANA "IPP Registrations" operation-id)."""

    PRINT_JOB = 0x0002
    PRINT_URI = 0x0003
    VALIDATE_JOB = 0x0004
    CREATE_JOB = 0x0005
    SEND_DOCUMENT = 0x0006
    SEND_URI = 0x0007
    CANCEL_JOB = 0x0008
    GET_JOB_ATTRIBUTES = 0x0009
    GET_JOBS = 0x000A
    GET_PRINTER_ATTRIBUTES = 0x000B
    HOLD_JOB = 0x000C
    RELEASE_JOB = 0x000D
    RESTART_JOB = 0x000E
    PAUSE_PRINTER = 0x0010
    RESUME_PRINTER = 0x0011
    PURGE_JOBS = 0x0012
    SET_PRINTER_ATTRIBUTES = 0x0013
    SET_JOB_ATTRIBUTES = 0x0014
    GET_PRINTER_SUPPORTED_VALUES = 0x0015
    CREATE_PRINTER_SUBSCRIPTIONS = 0x0016
    CREATE_JOB_SUBSCRIPTIONS = 0x0017
    GET_SUBSCRIPTION_ATTRIBUTES = 0x0018
    GET_SUBSCRIPTIONS = 0x0019
    RENEW_SUBSCRIPTION = 0x001A
    CANCEL_SUBSCRIPTION = 0x001B
    GET_NOTIFICATIONS = 0x001C
    ENABLE_PRINTER = 0x0022
    DISABLE_PRINTER = 0x0023
    PAUSE_PRINTER_AFTER_CURRENT_JOB = 0x0024
    HOLD_NEW_JOBS = 0x0025
    RELEASE_HELD_NEW_JOBS = 0x0026
    DEACTIVATE_PRINTER = 0x0027
    ACTIVATE_PRINTER = 0x0028
    RESTART_PRINTER = 0x0029
    SHUTDOWN_PRINTER = 0x002A
    STARTUP_PRINTER = 0x002B
    REPROCESS_JOB = 0x002C
    CANCEL_CURRENT_JOB = 0x002D
    SUSPEND_CURRENT_JOB = 0x002E
    RESUME_JOB = 0x002F
    PROMOTE_JOB = 0x0030
    SCHEDULE_JOB_AFTER = 0x0031
    CANCEL_DOCUMENT = 0x0033
    GET_DOCUMENT_ATTRIBUTES = 0x0034
    GET_DOCUMENTS = 0x0035
    DELETE_DOCUMENT = 0x0036
    SET_DOCUMENT_ATTRIBUTES = 0x0037
    CANCEL_JOBS = 0x0038
    CANCEL_MY_JOBS = 0x0039
    RESUBMIT_JOB = 0x003A
    CLOSE_JOB = 0x003B
    IDENTIFY_PRINTER = 0x003C
    VALIDATE_DOCUMENT = 0x003D
    ADD_DOCUMENT_IMAGES = 0x003E
    # PWG 5100.18 (IPP Shared Infrastructure Extensions, "IPP INFRA")
    ACKNOWLEDGE_DOCUMENT = 0x003F
    ACKNOWLEDGE_IDENTIFY_PRINTER = 0x0040
    ACKNOWLEDGE_JOB = 0x0041
    FETCH_DOCUMENT = 0x0042
    FETCH_JOB = 0x0043
    GET_OUTPUT_DEVICE_ATTRIBUTES = 0x0044
    UPDATE_ACTIVE_JOBS = 0x0045
    DEREGISTER_OUTPUT_DEVICE = 0x0046
    UPDATE_DOCUMENT_STATUS = 0x0047
    UPDATE_JOB_STATUS = 0x0048
    UPDATE_OUTPUT_DEVICE_ATTRIBUTES = 0x0049
    GET_NEXT_DOCUMENT_DATA = 0x004A
    # PWG 5100.22 (IPP System Service)
    ALLOCATE_PRINTER_RESOURCES = 0x004B
    CREATE_PRINTER = 0x004C
    DEALLOCATE_PRINTER_RESOURCES = 0x004D
    DELETE_PRINTER = 0x004E
    GET_PRINTERS = 0x004F
    SHUTDOWN_ONE_PRINTER = 0x0050
    STARTUP_ONE_PRINTER = 0x0051
    CANCEL_RESOURCE = 0x0052
    CREATE_RESOURCE = 0x0053
    INSTALL_RESOURCE = 0x0054
    SEND_RESOURCE_DATA = 0x0055
    SET_RESOURCE_ATTRIBUTES = 0x0056
    CREATE_RESOURCE_SUBSCRIPTIONS = 0x0057
    CREATE_SYSTEM_SUBSCRIPTIONS = 0x0058
    DISABLE_ALL_PRINTERS = 0x0059
    ENABLE_ALL_PRINTERS = 0x005A
    GET_SYSTEM_ATTRIBUTES = 0x005B
    GET_SYSTEM_SUPPORTED_VALUES = 0x005C
    PAUSE_ALL_PRINTERS = 0x005D
    PAUSE_ALL_PRINTERS_AFTER_CURRENT_JOB = 0x005E
    REGISTER_OUTPUT_DEVICE = 0x005F
    RESTART_SYSTEM = 0x0060
    RESUME_ALL_PRINTERS = 0x0061
    SET_SYSTEM_ATTRIBUTES = 0x0062
    SHUTDOWN_ALL_PRINTERS = 0x0063
    STARTUP_ALL_PRINTERS = 0x0064
    # CUPS' vendor operations (what `lpstat`/`lpadmin` send to a cupsd)
    CUPS_GET_DEFAULT = 0x4001
    CUPS_GET_PRINTERS = 0x4002
    CUPS_ADD_MODIFY_PRINTER = 0x4003
    CUPS_DELETE_PRINTER = 0x4004
    CUPS_GET_CLASSES = 0x4005
    CUPS_ADD_MODIFY_CLASS = 0x4006
    CUPS_DELETE_CLASS = 0x4007
    CUPS_ACCEPT_JOBS = 0x4008
    CUPS_REJECT_JOBS = 0x4009
    CUPS_SET_DEFAULT = 0x400A
    CUPS_GET_DEVICES = 0x400B
    CUPS_GET_PPDS = 0x400C
    CUPS_MOVE_JOB = 0x400D
    CUPS_AUTHENTICATE_JOB = 0x400E
    CUPS_GET_PPD = 0x400F
    CUPS_GET_DOCUMENT = 0x4027
    CUPS_CREATE_LOCAL_PRINTER = 0x4028

    @property
    def keyword(self) -> str:
        """The name RFC 8011 spells, e.g. `Get-Printer-Attributes`."""
        return _operation_name(self.name)


_ACRONYMS = {"URI": "URI", "PPD": "PPD", "PPDS": "PPDs"}


def _operation_name(enum_name: str) -> str:
    words = [_ACRONYMS.get(w, w.capitalize()) for w in enum_name.split("_")]
    if words[0] == "Cups":
        words[0] = "CUPS"
    return "-".join(words)


class Status(IntEnum):
    """status-code (RFC 8011 Appendix B, RFC 3995, PWG 5100.x; IANA registry)."""

    SUCCESSFUL_OK = 0x0000
    SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES = 0x0001
    SUCCESSFUL_OK_CONFLICTING_ATTRIBUTES = 0x0002
    SUCCESSFUL_OK_IGNORED_SUBSCRIPTIONS = 0x0003
    SUCCESSFUL_OK_TOO_MANY_EVENTS = 0x0005
    SUCCESSFUL_OK_EVENTS_COMPLETE = 0x0007
    CLIENT_ERROR_BAD_REQUEST = 0x0400
    CLIENT_ERROR_FORBIDDEN = 0x0401
    CLIENT_ERROR_NOT_AUTHENTICATED = 0x0402
    CLIENT_ERROR_NOT_AUTHORIZED = 0x0403
    CLIENT_ERROR_NOT_POSSIBLE = 0x0404
    CLIENT_ERROR_TIMEOUT = 0x0405
    CLIENT_ERROR_NOT_FOUND = 0x0406
    CLIENT_ERROR_GONE = 0x0407
    CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE = 0x0408
    CLIENT_ERROR_REQUEST_VALUE_TOO_LONG = 0x0409
    CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED = 0x040A
    CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED = 0x040B
    CLIENT_ERROR_URI_SCHEME_NOT_SUPPORTED = 0x040C
    CLIENT_ERROR_CHARSET_NOT_SUPPORTED = 0x040D
    CLIENT_ERROR_CONFLICTING_ATTRIBUTES = 0x040E
    CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED = 0x040F
    CLIENT_ERROR_COMPRESSION_ERROR = 0x0410
    CLIENT_ERROR_DOCUMENT_FORMAT_ERROR = 0x0411
    CLIENT_ERROR_DOCUMENT_ACCESS_ERROR = 0x0412
    CLIENT_ERROR_ATTRIBUTES_NOT_SETTABLE = 0x0413
    CLIENT_ERROR_IGNORED_ALL_SUBSCRIPTIONS = 0x0414
    CLIENT_ERROR_TOO_MANY_SUBSCRIPTIONS = 0x0415
    CLIENT_ERROR_DOCUMENT_PASSWORD_ERROR = 0x0418
    CLIENT_ERROR_DOCUMENT_PERMISSION_ERROR = 0x0419
    CLIENT_ERROR_DOCUMENT_SECURITY_ERROR = 0x041A
    CLIENT_ERROR_DOCUMENT_UNPRINTABLE_ERROR = 0x041B
    CLIENT_ERROR_ACCOUNT_INFO_NEEDED = 0x041C
    CLIENT_ERROR_ACCOUNT_CLOSED = 0x041D
    CLIENT_ERROR_ACCOUNT_LIMIT_REACHED = 0x041E
    CLIENT_ERROR_ACCOUNT_AUTHORIZATION_FAILED = 0x041F
    CLIENT_ERROR_NOT_FETCHABLE = 0x0420
    SERVER_ERROR_INTERNAL_ERROR = 0x0500
    SERVER_ERROR_OPERATION_NOT_SUPPORTED = 0x0501
    SERVER_ERROR_SERVICE_UNAVAILABLE = 0x0502
    SERVER_ERROR_VERSION_NOT_SUPPORTED = 0x0503
    SERVER_ERROR_DEVICE_ERROR = 0x0504
    SERVER_ERROR_TEMPORARY_ERROR = 0x0505
    SERVER_ERROR_NOT_ACCEPTING_JOBS = 0x0506
    SERVER_ERROR_BUSY = 0x0507
    SERVER_ERROR_JOB_CANCELED = 0x0508
    SERVER_ERROR_MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED = 0x0509
    SERVER_ERROR_PRINTER_IS_DEACTIVATED = 0x050A
    SERVER_ERROR_TOO_MANY_JOBS = 0x050B
    SERVER_ERROR_TOO_MANY_DOCUMENTS = 0x050C

    @property
    def keyword(self) -> str:
        """The keyword RFC 8011 spells, e.g. `client-error-bad-request`."""
        return self.name.lower().replace("_", "-")

    @property
    def successful(self) -> bool:
        return self < 0x0100


class JobState(IntEnum):
    """job-state (RFC 8011 §5.3.7)."""

    PENDING = 3
    PENDING_HELD = 4
    PROCESSING = 5
    PROCESSING_STOPPED = 6
    CANCELED = 7
    ABORTED = 8
    COMPLETED = 9

    @property
    def terminal(self) -> bool:
        """canceled, aborted and completed: the job will not change again."""
        return self >= JobState.CANCELED


class PrinterState(IntEnum):
    """printer-state (RFC 8011 §5.4.11)."""

    IDLE = 3
    PROCESSING = 4
    STOPPED = 5


class Finishings(IntEnum):
    """finishings (RFC 8011 §5.2.6, PWG 5100.1 §5.1)."""

    NONE = 3
    STAPLE = 4
    PUNCH = 5
    COVER = 6
    BIND = 7
    SADDLE_STITCH = 8
    EDGE_STITCH = 9
    FOLD = 10
    TRIM = 11
    BALE = 12
    BOOKLET_MAKER = 13
    JOG_OFFSET = 14
    COAT = 15
    LAMINATE = 16
    STAPLE_TOP_LEFT = 20
    STAPLE_BOTTOM_LEFT = 21
    STAPLE_TOP_RIGHT = 22
    STAPLE_BOTTOM_RIGHT = 23
    EDGE_STITCH_LEFT = 24
    EDGE_STITCH_TOP = 25
    EDGE_STITCH_RIGHT = 26
    EDGE_STITCH_BOTTOM = 27
    STAPLE_DUAL_LEFT = 28
    STAPLE_DUAL_TOP = 29
    STAPLE_DUAL_RIGHT = 30
    STAPLE_DUAL_BOTTOM = 31
    PUNCH_TOP_LEFT = 70
    PUNCH_BOTTOM_LEFT = 71
    PUNCH_TOP_RIGHT = 72
    PUNCH_BOTTOM_RIGHT = 73
    PUNCH_DUAL_LEFT = 74
    PUNCH_DUAL_TOP = 75
    PUNCH_DUAL_RIGHT = 76
    PUNCH_DUAL_BOTTOM = 77


class OrientationRequested(IntEnum):
    """orientation-requested (RFC 8011 §5.2.10; `none` from PWG 5100.13)."""

    PORTRAIT = 3
    LANDSCAPE = 4
    REVERSE_LANDSCAPE = 5
    REVERSE_PORTRAIT = 6
    NONE = 7


class PrintQuality(IntEnum):
    """print-quality (RFC 8011 §5.2.13)."""

    DRAFT = 3
    NORMAL = 4
    HIGH = 5


class ResolutionUnits(IntEnum):
    """The units octet of a resolution value (RFC 8011 §5.1.16)."""

    DOTS_PER_INCH = 3
    DOTS_PER_CM = 4


class OutOfBand(IntEnum):
    """Out-of-band values: the value tag is the whole value (RFC 8010 §3.5.2, RFC 3380)."""

    UNSUPPORTED = 0x10
    UNKNOWN = 0x12
    NO_VALUE = 0x13
    NOT_SETTABLE = 0x15
    DELETE_ATTRIBUTE = 0x16
    ADMIN_DEFINE = 0x17


@dataclass(frozen=True, slots=True)
class Resolution:
    """resolution (RFC 8011 §5.1.16): cross-feed x feed, in `units`."""

    x: int
    y: int
    units: ResolutionUnits = ResolutionUnits.DOTS_PER_INCH


@dataclass(frozen=True, slots=True)
class Range:
    """rangeOfInteger (RFC 8011 §5.1.14): `lower` to `upper`, both included."""

    lower: int
    upper: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.lower <= value <= self.upper


@dataclass(frozen=True, slots=True)
class TextWithLanguage:
    """textWithLanguage (RFC 8011 §5.1.2.1): text in an explicit natural language."""

    text: str
    language: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class NameWithLanguage:
    """nameWithLanguage (RFC 8011 §5.1.3.1): a name in an explicit natural language."""

    name: str
    language: str

    def __str__(self) -> str:
        return self.name


#: The Job Template attributes (RFC 8011 §5.2 Table 7, PWG 5100.7/5100.13 and the
#: registry's job template attributes an IPP Everywhere client sends). A Job
#: object holds them by these names; a Printer holds `NAME-default`,
#: `NAME-supported` and, for some, `NAME-ready` (§4.2.5.1 'job-template').
JOB_TEMPLATE: frozenset[str] = frozenset(
    {
        "copies",
        "finishings",
        "finishings-col",
        "ipp-attribute-fidelity",
        "job-account-id",
        "job-accounting-user-id",
        "job-cancel-after",
        "job-delay-output-until",
        "job-delay-output-until-time",
        "job-error-action",
        "job-hold-until",
        "job-hold-until-time",
        "job-pages-per-set",
        "job-phone-number",
        "job-priority",
        "job-recipient-name",
        "job-retain-until",
        "job-sheet-message",
        "job-sheets",
        "job-sheets-col",
        "media",
        "media-col",
        "media-input-tray-check",
        "multiple-document-handling",
        "number-up",
        "orientation-requested",
        "output-bin",
        "overrides",
        "page-delivery",
        "page-ranges",
        "pdl-init-file",
        "presentation-direction-number-up",
        "print-color-mode",
        "print-content-optimize",
        "print-quality",
        "print-rendering-intent",
        "print-scaling",
        "printer-resolution",
        "separator-sheets",
        "sheet-collate",
        "sides",
        "x-image-position",
        "x-image-shift",
        "x-side1-image-shift",
        "x-side2-image-shift",
        "y-image-position",
        "y-image-shift",
        "y-side1-image-shift",
        "y-side2-image-shift",
    }
)

#: Printer attributes that belong to 'job-template' without being NAME-default,
#: NAME-supported or NAME-ready of a Job Template attribute (§5.2 and PWG 5100.7).
PRINTER_JOB_TEMPLATE_EXTRAS: frozenset[str] = frozenset(
    {
        "media-col-database",
        "media-size-supported",
        "media-source-supported",
        "media-type-supported",
        "pdl-override-supported",
        "job-creation-attributes-supported",
    }
)

#: The Job Description attributes (RFC 8011 §5.3; RFC 3995, PWG 5100.7/5100.13).
#: 'job-description' is every Job attribute that is not Job Template; this set is
#: what a Job in this project may hold, for callers that need the names ahead of time.
JOB_DESCRIPTION: frozenset[str] = frozenset(
    {
        "date-time-at-completed",
        "date-time-at-creation",
        "date-time-at-processing",
        "document-format-supplied",
        "document-name-supplied",
        "job-detailed-status-messages",
        "job-document-access-errors",
        "job-id",
        "job-impressions",
        "job-impressions-completed",
        "job-k-octets",
        "job-k-octets-processed",
        "job-media-sheets",
        "job-media-sheets-completed",
        "job-message-from-operator",
        "job-more-info",
        "job-name",
        "job-originating-user-name",
        "job-printer-up-time",
        "job-printer-uri",
        "job-state",
        "job-state-message",
        "job-state-reasons",
        "job-uri",
        "job-uuid",
        "number-of-documents",
        "number-of-intervening-jobs",
        "output-device-assigned",
        "time-at-completed",
        "time-at-creation",
        "time-at-processing",
    }
)


def is_printer_job_template(name: str) -> bool:
    """True for a Printer attribute in the 'job-template' group (RFC 8011 §4.2.5.1)."""
    if name in PRINTER_JOB_TEMPLATE_EXTRAS:
        return True
    for suffix in ("-default", "-supported", "-ready"):
        if name.endswith(suffix) and name[: -len(suffix)] in JOB_TEMPLATE:
            return True
    return False
