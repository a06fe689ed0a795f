"""The Printer object of an IPP Everywhere queue (issue 14): its attributes for
Get-Printer-Attributes (RFC 8011 §4.2.5, §5.4; PWG 5100.14 §5.1-5.2 "IPP Everywhere
required attributes"; PWG 5100.7 media-col; PWG 5102.4 pwg-raster-document-*).

What a queue supports is what its printer does (`PrinterRow.color`; for a printer
whose IPP INFRA output device registered, its capabilities: `offer`,
`capabilities.py`) and what the print service's intake and conversion accept
(`JobOptions`: media, resolution, copies, duplex, color). A follow-me queue answers
for "any printer of the tenant": color when one of them prints color (a mono printer
prints the job in gray, as seed 003 ¶0107 says).

The static attributes are encoded once per queue version (`PrinterAttributes`,
kept by `AttributeCache`) and answered as cached bytes; only the state attributes
(`printer-state*`, `queued-job-count`, `printer-up-time`, `printer-current-time`)
are encoded per request (`dynamic_attributes`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from printcloud.ipp.encoding import encode_attribute
from printcloud.ipp.message import Attribute, Collection, ValueTag
from printcloud.ipp.model import (
    Finishings,
    Operation,
    OrientationRequested,
    PrinterState,
    PrintQuality,
    Range,
    Resolution,
)

if TYPE_CHECKING:
    from .capabilities import Capabilities

#: printcloud media (`service.MEDIA`) → PWG 5101.1 self-describing name and size
#: in hundredths of millimetres.
MEDIA_SIZES: dict[str, tuple[str, int, int]] = {
    "A4": ("iso_a4_210x297mm", 21000, 29700),
    "A3": ("iso_a3_297x420mm", 29700, 42000),
    "A5": ("iso_a5_148x210mm", 14800, 21000),
    "Letter": ("na_letter_8.5x11in", 21590, 27940),
    "Legal": ("na_legal_8.5x14in", 21590, 35560),
}
PWG_MEDIA = {pwg: name for name, (pwg, _, _) in MEDIA_SIZES.items()}
RESOLUTIONS = (150, 200, 300, 600)
#: pwg-raster-document-resolution-supported: what clients may render at for us.
RASTER_RESOLUTIONS = (150, 300, 600)
DEFAULT_DPI = 300
#: Our conversion renders the whole page: no unprintable margins.
MARGIN = 0
OPERATIONS = (
    Operation.PRINT_JOB,
    Operation.VALIDATE_JOB,
    Operation.CREATE_JOB,
    Operation.SEND_DOCUMENT,
    Operation.CANCEL_JOB,
    Operation.GET_JOB_ATTRIBUTES,
    Operation.GET_JOBS,
    Operation.GET_PRINTER_ATTRIBUTES,
    Operation.CANCEL_MY_JOBS,
    Operation.CLOSE_JOB,
    Operation.IDENTIFY_PRINTER,
    Operation.GET_PRINTER_SUPPORTED_VALUES,
    Operation.CREATE_JOB_SUBSCRIPTIONS,
    Operation.GET_NOTIFICATIONS,
    Operation.CANCEL_SUBSCRIPTION,
)
WHICH_JOBS = (
    "completed",
    "not-completed",
    "aborted",
    "all",
    "canceled",
    "pending",
    "pending-held",
    "processing",
)
JOB_CREATION_ATTRIBUTES = (
    "copies",
    "document-format",
    "document-name",
    "ipp-attribute-fidelity",
    "job-hold-until",
    "job-name",
    "media",
    "media-col",
    "page-ranges",
    "print-color-mode",
    "printer-resolution",
    "sides",
)
#: The operation's document formats (the intake's, see `formats.py`).
OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
#: How long a Create-Job waits for its Send-Document (RFC 8011 §5.4.31).
MULTIPLE_OPERATION_TIME_OUT = 120
PAGES_PER_MINUTE = 20


#: The identify-actions (PWG 5100.13 §5.2.5) a printcloud device performs when it is
#: asked to show itself (`identify.py`): a banner with the message on its panel, and a
#: bell. `flash` and `speak` are not.
IDENTIFY_ACTIONS = ("display", "sound")


@dataclass(frozen=True)
class QueueFacts:
    """What a queue's attributes depend on; a change makes new cached encodings."""

    tenant_id: str
    name: str
    uuid: str
    info: str
    location: str
    printer_id: str | None
    color: bool
    uri: str
    more_info: str
    formats: tuple[str, ...]
    config_changed: datetime
    #: The authentication a queue asks for (`basic`; `none` is never: see ipp_auth).
    authentication: str = "basic"
    #: What the printer's IPP INFRA output device registered (`capabilities.py`): the
    #: queue offers only that; None: all printcloud can do.
    device: Capabilities | None = None


@dataclass(frozen=True)
class Offer:
    """What a queue offers of what printcloud can do (its printer's device's part)."""

    media: tuple[str, ...]
    media_default: str
    media_ready: tuple[str, ...]
    sides: tuple[str, ...]
    resolutions: tuple[int, ...]
    default_dpi: int
    raster_resolutions: tuple[int, ...]
    copies_max: int
    make_and_model: str | None


def offer(device: Capabilities | None) -> Offer:
    if device is None:
        return Offer(
            media=tuple(MEDIA_SIZES),
            media_default="A4",
            media_ready=("A4", "Letter"),
            sides=("one-sided", "two-sided-long-edge"),
            resolutions=RESOLUTIONS,
            default_dpi=DEFAULT_DPI,
            raster_resolutions=RASTER_RESOLUTIONS,
            copies_max=999,
            make_and_model=None,
        )
    raster = tuple(d for d in RASTER_RESOLUTIONS if d in device.resolutions)
    return Offer(
        media=device.media,
        media_default=device.media_default,
        media_ready=device.media_ready,
        sides=device.sides,
        resolutions=device.resolutions,
        default_dpi=device.nearest_dpi(DEFAULT_DPI),
        raster_resolutions=raster or RASTER_RESOLUTIONS,
        copies_max=device.copies_max,
        make_and_model=device.make_and_model or None,
    )


def _kw(name: str, *values: str) -> Attribute:
    return Attribute(name, ValueTag.KEYWORD, list(values))


def _int(name: str, *values: int) -> Attribute:
    return Attribute(name, ValueTag.INTEGER, list(values))


def _enum(name: str, *values: int) -> Attribute:
    return Attribute(name, ValueTag.ENUM, [int(v) for v in values])


def _bool(name: str, value: bool) -> Attribute:
    return Attribute(name, ValueTag.BOOLEAN, value)


def _text(name: str, value: str) -> Attribute:
    return Attribute(name, ValueTag.TEXT, value)


def _uri(name: str, *values: str) -> Attribute:
    return Attribute(name, ValueTag.URI, list(values))


def media_size(x: int, y: int) -> Collection:
    return Collection([_int("x-dimension", x), _int("y-dimension", y)])


def media_col(media: str, *, source: str | None = None, kind: str | None = None) -> Collection:
    """A media-col value for printcloud `media` (PWG 5100.7 §6.3)."""
    pwg, x, y = MEDIA_SIZES[media]
    members = [
        Attribute("media-key", ValueTag.KEYWORD, pwg),
        Attribute("media-size", ValueTag.BEG_COLLECTION, media_size(x, y)),
        Attribute("media-size-name", ValueTag.KEYWORD, pwg),
        _int("media-bottom-margin", MARGIN),
        _int("media-left-margin", MARGIN),
        _int("media-right-margin", MARGIN),
        _int("media-top-margin", MARGIN),
    ]
    if source:
        members.append(_kw("media-source", source))
    if kind:
        members.append(_kw("media-type", kind))
    return Collection(members)


def static_attributes(q: QueueFacts) -> list[Attribute]:
    """Every attribute of the queue that changes only with its configuration."""
    o = offer(q.device)
    color_modes = ("auto", "color", "monochrome") if q.color else ("monochrome",)
    raster_types = ("black_1", "sgray_8", "srgb_8") if q.color else ("black_1", "sgray_8")
    rs = "RS" + "-".join(str(d) for d in o.raster_resolutions)
    urf = ["V1.4", "CP1", "W8", rs, "DM1", "MT1", "IS1"]
    if q.color:
        urf.insert(3, "SRGB24")
    make = "printcloud" + (" follow-me" if q.printer_id is None else "")
    model = o.make_and_model or make
    attrs = [
        Attribute("charset-configured", ValueTag.CHARSET, "utf-8"),
        Attribute("charset-supported", ValueTag.CHARSET, ["us-ascii", "utf-8"]),
        _bool("color-supported", q.color),
        _kw("compression-supported", "deflate", "gzip", "none"),
        _int("copies-default", 1),
        Attribute("copies-supported", ValueTag.RANGE_OF_INTEGER, Range(1, o.copies_max)),
        Attribute("document-format-default", ValueTag.MIME_MEDIA_TYPE, OCTET_STREAM),
        Attribute("document-format-supported", ValueTag.MIME_MEDIA_TYPE, list(q.formats)),
        _enum("finishings-default", Finishings.NONE),
        _enum("finishings-supported", Finishings.NONE),
        Attribute("generated-natural-language-supported", ValueTag.NATURAL_LANGUAGE, "en"),
        _kw("identify-actions-default", "display"),
        _kw("identify-actions-supported", *IDENTIFY_ACTIONS),
        _kw("ipp-features-supported", "ipp-everywhere"),
        _kw("ipp-versions-supported", "1.1", "2.0"),
        _kw("job-creation-attributes-supported", *JOB_CREATION_ATTRIBUTES),
        _kw("job-hold-until-default", "no-hold"),
        _kw("job-hold-until-supported", "no-hold", "indefinite"),
        _bool("job-ids-supported", True),
        _int("job-priority-default", 50),
        _int("job-priority-supported", 1),
        Attribute("job-sheets-default", ValueTag.NAME, "none"),
        Attribute("job-sheets-supported", ValueTag.NAME, "none"),
        _int("media-bottom-margin-supported", MARGIN),
        Attribute(
            "media-col-database",
            ValueTag.BEG_COLLECTION,
            [media_col(m) for m in o.media],
        ),
        Attribute(
            "media-col-default",
            ValueTag.BEG_COLLECTION,
            media_col(o.media_default, source="main", kind="stationery"),
        ),
        Attribute(
            "media-col-ready",
            ValueTag.BEG_COLLECTION,
            [media_col(m, source="main", kind="stationery") for m in o.media_ready],
        ),
        _kw(
            "media-col-supported",
            "media-bottom-margin",
            "media-left-margin",
            "media-right-margin",
            "media-size",
            "media-size-name",
            "media-source",
            "media-top-margin",
            "media-type",
        ),
        _kw("media-default", MEDIA_SIZES[o.media_default][0]),
        _int("media-left-margin-supported", MARGIN),
        _kw("media-ready", *(MEDIA_SIZES[m][0] for m in o.media_ready)),
        _int("media-right-margin-supported", MARGIN),
        Attribute(
            "media-size-supported",
            ValueTag.BEG_COLLECTION,
            [media_size(*MEDIA_SIZES[m][1:]) for m in o.media],
        ),
        _kw("media-source-supported", "auto", "main"),
        _kw("media-supported", *(MEDIA_SIZES[m][0] for m in o.media)),
        _int("media-top-margin-supported", MARGIN),
        _kw("media-type-supported", "auto", "stationery"),
        _kw("multiple-document-handling-supported", "separate-documents-uncollated-copies"),
        _bool("multiple-document-jobs-supported", False),
        _int("multiple-operation-time-out", MULTIPLE_OPERATION_TIME_OUT),
        _kw("multiple-operation-time-out-action", "abort-job"),
        Attribute("natural-language-configured", ValueTag.NATURAL_LANGUAGE, "en"),
        # RFC 3995/3996: a user's job subscriptions, pulled by ippget (ipp_subscriptions)
        _kw("notify-events-default", "job-completed"),
        _kw("notify-events-supported", "job-completed", "job-state-changed"),
        _int("notify-max-events-supported", 2),
        _kw("notify-pull-method-supported", "ippget"),
        _enum("operations-supported", *OPERATIONS),
        _enum("orientation-requested-default", OrientationRequested.PORTRAIT),
        _enum("orientation-requested-supported", OrientationRequested.PORTRAIT),
        _kw("output-bin-default", "face-down"),
        _kw("output-bin-supported", "face-down"),
        # PWG 5100.6's spelling; Debian's ipp-everywhere.test wants "document-number"
        _kw("overrides-supported", "document-numbers", "pages"),
        _bool("page-ranges-supported", True),
        # PWG 5100.12 requires them; a nominal figure (the real one is the printer's)
        _int("pages-per-minute", PAGES_PER_MINUTE),
        *([_int("pages-per-minute-color", PAGES_PER_MINUTE)] if q.color else []),
        _kw("pdl-override-supported", "attempted"),
        _bool("preferred-attributes-supported", False),
        _kw("print-color-mode-default", "color" if q.color else "monochrome"),
        _kw("print-color-mode-supported", *color_modes),
        _kw("print-content-optimize-default", "auto"),
        _kw("print-content-optimize-supported", "auto"),
        _enum("print-quality-default", PrintQuality.NORMAL),
        _enum("print-quality-supported", PrintQuality.NORMAL),
        _kw("print-rendering-intent-default", "auto"),
        _kw("print-rendering-intent-supported", "auto"),
        _text(
            "printer-device-id",
            f"MFG:printcloud;MDL:{make};CMD:PDF,JPEG,PWG,URF;CLS:PRINTER;",
        ),
        Attribute("printer-geo-location", ValueTag.UNKNOWN),
        _kw("printer-get-attributes-supported", "document-format"),
        # RFC 3380: nothing of a queue is set over IPP (Get-Printer-Supported-Values)
        _kw("printer-settable-attributes-supported", "none"),
        _uri("printer-icons", f"{q.more_info}/static/icon.png"),
        _text("printer-info", q.info),
        _text("printer-location", q.location),
        _text("printer-make-and-model", model),
        _uri("printer-more-info", q.more_info),
        Attribute("printer-name", ValueTag.NAME, q.name),
        _text("printer-organization", q.tenant_id),
        _text("printer-organizational-unit", ""),
        Attribute(
            "printer-resolution-default",
            ValueTag.RESOLUTION,
            Resolution(o.default_dpi, o.default_dpi),
        ),
        Attribute(
            "printer-resolution-supported",
            ValueTag.RESOLUTION,
            [Resolution(d, d) for d in o.resolutions],
        ),
        Attribute("printer-supply", ValueTag.OCTET_STRING, b"index=1;class=other;type=other;"),
        _text("printer-supply-description", "Cloud queue"),
        _uri("printer-supply-info-uri", q.more_info),
        _uri("printer-uri-supported", q.uri),
        _uri("printer-uuid", f"urn:uuid:{q.uuid}"),
        Attribute(
            "pwg-raster-document-resolution-supported",
            ValueTag.RESOLUTION,
            [Resolution(d, d) for d in o.raster_resolutions],
        ),
        _kw("pwg-raster-document-sheet-back", "normal"),
        _kw("pwg-raster-document-type-supported", *raster_types),
        Attribute("reference-uri-schemes-supported", ValueTag.URI_SCHEME, ["http", "https"]),
        _kw("sides-default", "one-sided"),
        _kw("sides-supported", *o.sides),
        _kw("uri-authentication-supported", q.authentication),
        _kw("uri-security-supported", "tls" if q.uri.startswith("ipps:") else "none"),
        _kw("urf-supported", *urf),
        _kw("which-jobs-supported", *WHICH_JOBS),
        Attribute("printer-config-change-date-time", ValueTag.DATE_TIME, q.config_changed),
        _int("printer-config-change-time", int(q.config_changed.timestamp())),
    ]
    return attrs


@dataclass(frozen=True)
class PrinterStatus:
    """The queue's printer at this moment (from the print service's jobs)."""

    state: PrinterState
    reasons: tuple[str, ...]
    message: str
    queued: int
    changed: datetime


class PrinterAttributes:
    """One queue's attributes: the static ones pre-encoded, by name."""

    def __init__(self, facts: QueueFacts) -> None:
        self.facts = facts
        attrs = static_attributes(facts)
        self.encoded: dict[str, bytes] = {a.name: encode_attribute(a) for a in attrs}
        self.values: dict[str, Attribute] = {a.name: a for a in attrs}
        self.names_in_order: list[str] = sorted([*self.encoded, *DYNAMIC])

    def encode(self, names: frozenset[str], status: PrinterStatus) -> list[bytes]:
        """The attributes `names` as encoded bytes, static ones from the cache."""
        out = [self.encoded[n] for n in self.names_in_order if n in names and n in self.encoded]
        out.extend(encode_attribute(a) for a in dynamic_attributes(status) if a.name in names)
        return out


#: Answered only when asked for by name (its size; as CUPS and ippeveprinter do).
EXPLICIT_ONLY = frozenset({"media-col-database"})
DYNAMIC = (
    "printer-current-time",
    "printer-is-accepting-jobs",
    "printer-state",
    "printer-state-change-date-time",
    "printer-state-change-time",
    "printer-state-message",
    "printer-state-reasons",
    "printer-up-time",
    "queued-job-count",
)


def dynamic_attributes(status: PrinterStatus) -> list[Attribute]:
    """The state attributes now. Times are seconds since the epoch (as CUPS counts
    printer-up-time), so job times stay comparable across restarts."""
    now = datetime.now(UTC)
    return [
        Attribute("printer-current-time", ValueTag.DATE_TIME, now),
        _bool("printer-is-accepting-jobs", True),
        _enum("printer-state", status.state),
        Attribute("printer-state-change-date-time", ValueTag.DATE_TIME, status.changed),
        _int("printer-state-change-time", int(status.changed.timestamp())),
        _text("printer-state-message", status.message),
        _kw("printer-state-reasons", *(status.reasons or ("none",))),
        _int("printer-up-time", int(time.time())),
        _int("queued-job-count", status.queued),
    ]


class AttributeCache:
    """Encoded attributes per queue version, bounded (the oldest are dropped)."""

    def __init__(self, *, limit: int = 1000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[QueueFacts, PrinterAttributes] = OrderedDict()

    def get(self, facts: QueueFacts) -> PrinterAttributes:
        with self._lock:
            found = self._items.get(facts)
            if found is not None:
                self._items.move_to_end(facts)
                return found
        made = PrinterAttributes(facts)
        with self._lock:
            self._items[facts] = made
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        return made
