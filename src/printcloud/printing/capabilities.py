"""What a printer can do, from what its IPP INFRA output device registered (issue 15,
PWG 5100.18 Update-Output-Device-Attributes; RFC 8011 §5.4, PWG 5100.7, PWG 5102.4
pwg-raster-document-*, Apple's `urf-supported`).

A printer whose device registered has **capabilities** (`PrinterRow.capabilities`):
the device's attributes intersected with what printcloud can do, as `Capabilities`.
They become the printer's and its queues':

- the printer's `color` follows the device (a mono device gets gray conversion,
  seed 003 ¶0107);
- an IPP Everywhere queue of the printer answers Get-Printer-Attributes with them
  (`ipp_printer.static_attributes`) and refuses at job intake a sides, media or
  copies value the device cannot print (`ipp_jobs.job_template`; `check` for the
  REST API, HTTP 422);
- a job converts at the supported resolution nearest to the one it asks for
  (`nearest_dpi`), and Fetch-Document offers the formats the device registered
  (`fetch_formats`).

`derive` reads the attributes: values of the wrong syntax or unknown to printcloud
are ignored; an attribute the device did not report leaves that capability as
printcloud's. Only a registration that leaves nothing to print is refused
(`Refused`): no media size, or no document format, printcloud and the device share.

Deregister-Output-Device keeps them: the printer is still that device (a proxy
restarting deregisters and registers again), its queued jobs keep converting for
it, and clients that made a driver from the queue's attributes keep seeing the same
printer. The next registration replaces them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import NotSupported
from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import Range, Resolution, ResolutionUnits

from . import infra, service
from .changes import CONFIG, bump_on_commit
from .ipp_printer import MEDIA_SIZES, PWG_MEDIA, RESOLUTIONS
from .models import PrinterRow

PDF, PWG, URF, JPEG = "application/pdf", "image/pwg-raster", "image/urf", "image/jpeg"
#: The formats Fetch-Document can serve, in printcloud's order of preference.
FORMATS = (PDF, PWG, URF, JPEG)
#: The raster types printcloud encodes (`ipp.raster_encode`), gray then color.
#: The raster types printcloud sends (`raster_stream`: made by the conversion workers).
PWG_TYPES = ("sgray_8", "srgb_8", "black_1", "cmyk_8")
URF_TYPES = ("W8", "SRGB24")
MAX_COPIES = 999
SIDES = ("one-sided", "two-sided-long-edge")
_TEXT = 127
#: A PWG 5101.1 self-describing media name: class_name_WIDTHxHEIGHTunits.
_SIZE = re.compile(r"_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$")


class Refused(Exception):
    """A registration that leaves the printer nothing to print, naming the attribute."""

    def __init__(self, text: str, attribute: Attribute) -> None:
        super().__init__(text)
        self.text = text
        self.attribute = attribute


@dataclass(frozen=True)
class Capabilities:
    """What a registered printer can print, within what printcloud can do."""

    color: bool
    #: printcloud media names (`service.MEDIA`), in that order
    media: tuple[str, ...]
    media_default: str
    media_ready: tuple[str, ...]
    duplex: bool
    #: dpi at which jobs convert (square resolutions only)
    resolutions: tuple[int, ...]
    #: what Fetch-Document may offer (of `FORMATS`)
    formats: tuple[str, ...]
    pwg_resolutions: tuple[int, ...]
    pwg_types: tuple[str, ...]
    urf_resolutions: tuple[int, ...]
    urf_types: tuple[str, ...]
    copies_max: int
    make_and_model: str

    @property
    def sides(self) -> tuple[str, ...]:
        return SIDES if self.duplex else SIDES[:1]

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities:
        fields = cls.__dataclass_fields__
        kept: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields
        }
        return cls(**kept)

    def nearest_dpi(self, dpi: int) -> int:
        """The resolution a job asking for `dpi` converts at (the lower one on a tie)."""
        return min(self.resolutions, key=lambda d: (abs(d - dpi), d))


def of(printer: PrinterRow) -> Capabilities | None:
    """The printer's registered capabilities; None: configured, all printcloud can do."""
    if not printer.capabilities:
        return None
    return Capabilities.from_json(printer.capabilities)


# -- reading the device's attributes ----------------------------------------------------


def _values(attrs: dict[str, Attribute], name: str, *tags: int) -> list[Any] | None:
    """The values of `name` of one of `tags` (others ignored); None when not reported or
    when no value has a syntax that makes sense."""
    attribute = attrs.get(name)
    if attribute is None or attribute.out_of_band:
        return None
    found = [v for v, t in zip(attribute.values, attribute.tags, strict=True) if t in tags]
    return found or None


def _keywords(attrs: dict[str, Attribute], name: str) -> list[str] | None:
    found = _values(attrs, name, ValueTag.KEYWORD, ValueTag.NAME, ValueTag.NAME_WITH_LANGUAGE)
    return None if found is None else [str(v) for v in found]


def media_name(keyword: str) -> str | None:
    """printcloud's name for a PWG 5101.1 media keyword: by name, else by its size
    (within 1 mm, PWG 5100.7 §6.3.2: `om_a4-ish_210x297mm` is A4)."""
    if keyword in PWG_MEDIA:
        return PWG_MEDIA[keyword]
    size = _SIZE.search(keyword)
    if size is None:
        return None
    scale = 2540 if size.group(3) == "in" else 100
    x, y = (round(float(size.group(i)) * scale) for i in (1, 2))
    for name, (_, mx, my) in MEDIA_SIZES.items():
        if abs(mx - x) <= 100 and abs(my - y) <= 100:
            return name
    return None


def _dpis(values: list[Any] | None) -> set[int] | None:
    """Square resolutions in dpi (dots per cm converted, to the nearest dpi)."""
    if values is None:
        return None
    found = set()
    for value in values:
        if not isinstance(value, Resolution) or value.x != value.y or value.x <= 0:
            continue
        dpi = value.x if value.units == ResolutionUnits.DOTS_PER_INCH else round(value.x * 2.54)
        found.add(dpi)
    return found or None


def _urf(keywords: list[str] | None) -> tuple[set[int] | None, list[str]]:
    """`urf-supported`: its RS (resolutions) and the color spaces printcloud encodes."""
    if keywords is None:  # not reported: the device reads what printcloud makes
        return None, list(URF_TYPES)
    dpis: set[int] = set()
    for word in keywords:
        if word.startswith("RS"):
            dpis.update(int(d) for d in word[2:].split("-") if d.isdigit())
    return dpis or None, [t for t in URF_TYPES if t in keywords]


def _ours(dpis: set[int] | None) -> tuple[int, ...]:
    """The device's resolutions printcloud converts at; all of them when none reported."""
    if dpis is None:
        return RESOLUTIONS
    return tuple(d for d in RESOLUTIONS if d in dpis)


def derive(attributes: list[Attribute], *, configured_color: bool) -> Capabilities:
    """The capabilities a device's printer attributes give (Refused: nothing to print)."""
    attrs = {a.name: a for a in attributes}
    # document formats, and the raster each can carry
    formats_reported = _values(attrs, "document-format-supported", ValueTag.MIME_MEDIA_TYPE)
    wanted = {str(f).lower().split(";")[0].strip() for f in formats_reported or ()}
    formats = [f for f in FORMATS if formats_reported is None or f in wanted]
    printer_dpis = _dpis(_values(attrs, "printer-resolution-supported", ValueTag.RESOLUTION))
    pwg_reported = _keywords(attrs, "pwg-raster-document-type-supported")
    pwg_types = tuple(t for t in PWG_TYPES if pwg_reported is None or t in pwg_reported)
    pwg_dpis = _dpis(
        _values(attrs, "pwg-raster-document-resolution-supported", ValueTag.RESOLUTION)
    )
    pwg_resolutions = _ours(pwg_dpis or printer_dpis)
    urf_dpis, urf_types = _urf(_keywords(attrs, "urf-supported"))
    urf_resolutions = _ours(urf_dpis or printer_dpis)
    if PWG in formats and not (pwg_types and pwg_resolutions):
        formats.remove(PWG)  # printcloud cannot make a raster this printer reads
    if URF in formats and not (urf_types and urf_resolutions):
        formats.remove(URF)
    if not formats:
        raise Refused(
            "the output device takes none of the formats printcloud sends "
            f"({', '.join(FORMATS)}; PWG raster as {'/'.join(PWG_TYPES)}, URF as W8/SRGB24, "
            f"at {'/'.join(map(str, RESOLUTIONS))} dpi)",
            attrs.get("document-format-supported")
            or Attribute("document-format-supported", ValueTag.MIME_MEDIA_TYPE, "none"),
        )
    # the resolutions jobs convert at: those of the formats the device takes
    dpis: set[int] = set()
    if PDF in formats or JPEG in formats:
        near = _ours(printer_dpis)
        if not near and printer_dpis:  # a PDF printer at 360/720 dpi: the nearest ours
            near = tuple(sorted({min(RESOLUTIONS, key=lambda d: abs(d - p)) for p in printer_dpis}))
        dpis.update(near)
    if PWG in formats:
        dpis.update(pwg_resolutions)
    if URF in formats:
        dpis.update(urf_resolutions)
    # color: every attribute that speaks of it must allow it
    evidence: list[bool] = []
    supported = _values(attrs, "color-supported", ValueTag.BOOLEAN)
    if supported is not None:
        evidence.append(bool(supported[0]))
    modes = _keywords(attrs, "print-color-mode-supported")
    if modes is not None:
        evidence.append("color" in modes)
    color = all(evidence) if evidence else configured_color
    # media
    reported = _keywords(attrs, "media-supported")
    known = {m for m in (media_name(k) for k in reported or ()) if m}
    media = tuple(m for m in service.MEDIA if reported is None or m in known)
    if not media:
        raise Refused(
            f"the output device has none of the media printcloud prints on "
            f"({', '.join(pwg for pwg, _, _ in MEDIA_SIZES.values())})",
            attrs["media-supported"],
        )
    defaults = [media_name(k) for k in _keywords(attrs, "media-default") or ()]
    fallback = "A4" if "A4" in media else media[0]
    default = next((m for m in defaults if m in media), fallback)
    ready = [media_name(k) for k in _keywords(attrs, "media-ready") or ()]
    media_ready = tuple(m for m in media if m in ready) or (default,)
    # sides: one-sided always (a printer that cannot is no printer); long-edge duplex
    sides = _keywords(attrs, "sides-supported")
    duplex = sides is None or "two-sided-long-edge" in sides
    # copies
    copies_max = MAX_COPIES
    ranges = _values(attrs, "copies-supported", ValueTag.RANGE_OF_INTEGER)
    if ranges and isinstance(ranges[0], Range) and ranges[0].upper >= 1:
        copies_max = min(ranges[0].upper, MAX_COPIES)
    made = _values(attrs, "printer-make-and-model", ValueTag.TEXT, ValueTag.TEXT_WITH_LANGUAGE)
    make = "".join(c for c in str(made[0]) if c.isprintable())[:_TEXT].strip() if made else ""
    return Capabilities(
        color=color,
        media=media,
        media_default=default,
        media_ready=media_ready,
        duplex=duplex,
        resolutions=tuple(sorted(dpis)),
        formats=tuple(formats),
        pwg_resolutions=pwg_resolutions if PWG in formats else (),
        pwg_types=pwg_types if PWG in formats else (),
        urf_resolutions=urf_resolutions if URF in formats else (),
        urf_types=tuple(urf_types) if URF in formats else (),
        copies_max=copies_max,
        make_and_model=make,
    )


# -- registration --------------------------------------------------------------------------


def register(
    db: Session, *, tenant_id: str, printer_id: str, uuid: str, attributes: list[Attribute]
) -> PrinterRow:
    """Update-Output-Device-Attributes (`infra.register`), then the printer's capabilities
    from all the attributes the device has reported (Refused: nothing is kept, the
    transaction rolls back)."""
    printer = infra.register(
        db, tenant_id=tenant_id, printer_id=printer_id, uuid=uuid, attributes=attributes
    )
    caps = derive(infra.device_attributes(printer), configured_color=printer.color)
    known = of(printer)
    if known == caps:  # a state update (printer-state, …): the queues' config is unchanged
        return printer
    printer.capabilities = {**caps.as_json(), "registered_at": utcnow().isoformat()}
    printer.color = caps.color
    bump_on_commit(db, CONFIG)  # queues answer with them at once
    return printer


def registered_at(printer: PrinterRow) -> datetime | None:
    """When the capabilities were registered (a queue's printer-config-change-time)."""
    if not printer.capabilities or "registered_at" not in printer.capabilities:
        return None
    return datetime.fromisoformat(str(printer.capabilities["registered_at"]))


# -- job intake and conversion ------------------------------------------------------------


def check(
    printer: PrinterRow, options: service.JobOptions, *, given: frozenset[str] | None = None
) -> service.JobOptions:
    """A job's print settings for a printer with capabilities: what the device cannot do
    is refused (NotSupported, HTTP 422, naming the setting and the value); the
    resolution becomes the nearest the device takes; a media the caller did not give
    (`given`: the names it set; None: all) is the device's default. Color is never
    refused: a mono printer prints the job in gray."""
    caps = of(printer)
    if caps is None or options.follow_me:  # follow-me: checked where it is released
        return options
    media = options.media
    if given is not None and "media" not in given:
        media = caps.media_default
    name = printer.printer_id
    if media not in caps.media:
        raise NotSupported(
            f"printer {name!r} has no media {media!r} (it has {', '.join(caps.media)})",
            field="media",
        )
    if options.duplex and not caps.duplex:
        raise NotSupported(
            f"printer {name!r} prints one-sided only: duplex is not supported", field="duplex"
        )
    if options.copies > caps.copies_max:
        raise NotSupported(
            f"printer {name!r} prints at most {caps.copies_max} copies, not {options.copies}",
            field="copies",
        )
    dpi = caps.nearest_dpi(options.dpi)
    if (media, dpi) == (options.media, options.dpi):
        return options
    return service.JobOptions(**{**options.as_dict(), "media": media, "dpi": dpi})


def device_formats(db: Session, *, tenant_id: str, printer_id: str) -> list[str] | None:
    """The document formats the printer's registered device takes (of PDF, PWG raster,
    URF and JPEG), or None when no device registered: Fetch-Document offers no other.
    Which raster type and resolution is `raster_stream.choose`'s."""
    caps = of(service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id))
    return None if caps is None else list(caps.formats)
