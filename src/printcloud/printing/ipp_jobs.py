"""IPP jobs of a queue (issue 14): Job Template attributes onto printcloud's print
settings, and a job's attributes for Get-Job-Attributes / Get-Jobs.

- `job_template` (RFC 8011 §5.2, §4.1.7; PWG 5100.7 media-col): copies → copies,
  sides → duplex, print-color-mode → color, media / media-col → media,
  printer-resolution → dpi, job-hold-until → hold; what the queue does not support
  is listed for the unsupported-attributes group and substituted by the default
  (`successful-ok-ignored-or-substituted-attributes`), or refused
  (`client-error-attributes-or-values-not-supported`) when the client asked for
  `ipp-attribute-fidelity`. A sides, media or copies value printcloud can do but the
  queue's printer cannot (the capabilities its IPP INFRA output device registered,
  `capabilities.py`) is `Template.refused`: refused with fidelity, else substituted
  like the rest (`ipp_operations._template`).
- `job_attributes` (RFC 8011 §5.3): an `IppJobRow` with its print job
  (`PrintJobRow`), the state from `ipp_states`; another user's job shows only its
  state and times (or nothing: the queue's `job_privacy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from printcloud.core import words
from printcloud.ipp.message import Attribute, Collection, Group, ValueTag
from printcloud.ipp.model import (
    Finishings,
    OrientationRequested,
    PrintQuality,
    Range,
    Resolution,
    ResolutionUnits,
)
from printcloud.ipp.operations import unsupported

from .ipp_printer import MEDIA_SIZES, PWG_MEDIA, offer
from .ipp_states import ABORTED, CANCELED, IppJobState, ipp_state
from .models import IppJobRow, PrintJobRow
from .service import JobOptions

if TYPE_CHECKING:
    from .capabilities import Capabilities

MONO_MODES = ("monochrome", "process-monochrome", "auto-monochrome", "bi-level")
#: Job Template attributes a queue accepts with exactly these values (and ignores).
ACCEPTED_AS_IS: dict[str, tuple[Any, ...]] = {
    "finishings": (int(Finishings.NONE),),
    "orientation-requested": (int(OrientationRequested.PORTRAIT),),
    "print-quality": (int(PrintQuality.NORMAL),),
    "output-bin": ("face-down",),
    "print-content-optimize": ("auto",),
    "print-rendering-intent": ("auto",),
    "print-scaling": ("auto", "auto-fit", "fit", "none"),
    "multiple-document-handling": ("separate-documents-uncollated-copies",),
    "job-sheets": ("none",),
}
IGNORED = frozenset({"job-priority", "job-account-id", "job-accounting-user-id"})


@dataclass
class Template:
    """What a request's Job Template attributes come to."""

    options: JobOptions
    #: The IPP values to answer with (sides, print-color-mode, media, ...).
    values: dict[str, Any] = field(default_factory=dict)
    #: Entries of the unsupported-attributes group.
    unsupported: list[Attribute] = field(default_factory=list)
    #: page-ranges (RFC 8011 §5.2.7): the pages to print, None for all.
    ranges: list[Range] | None = None
    #: Values the queue's printer cannot print (its device's capabilities): refused.
    refused: list[Attribute] = field(default_factory=list)


def _media_of(value: Any) -> str | None:
    if isinstance(value, str):
        return PWG_MEDIA.get(value)
    if isinstance(value, Collection):
        if "media-size-name" in value:
            return PWG_MEDIA.get(str(value["media-size-name"].value))
        if "media-key" in value:
            found = PWG_MEDIA.get(str(value["media-key"].value))
            if found:
                return found
        if "media-size" in value and isinstance(value["media-size"].value, Collection):
            size = value["media-size"].value
            try:
                x, y = int(size["x-dimension"].value), int(size["y-dimension"].value)
            except (KeyError, TypeError, ValueError):
                return None
            for name, (_, mx, my) in MEDIA_SIZES.items():
                # PWG 5100.7 §6.3.2: sizes match within 1 mm either way
                if abs(mx - x) <= 100 and abs(my - y) <= 100:
                    return name
    return None


def job_template(
    job: Group | None, *, color: bool, follow_me: bool, device: Capabilities | None = None
) -> Template:
    """The print settings a request's job attributes group asks for (RFC 8011 §5.2), on
    a queue whose printer's output device registered `device`."""
    o = offer(device)
    copies, duplex, media, dpi, hold = 1, False, o.media_default, o.default_dpi, follow_me
    want_color = color
    page_ranges: list[Range] | None = None
    values: dict[str, Any] = {
        "copies": 1,
        "sides": "one-sided",
        "print-color-mode": "color" if color else "monochrome",
        "media": MEDIA_SIZES[media][0],
        "printer-resolution": dpi,
        "job-hold-until": "indefinite" if follow_me else "no-hold",
    }
    bad: list[Attribute] = []
    refused: list[Attribute] = []
    for attr in job or ():
        name, value = attr.name, attr.value
        single = len(attr.values) == 1 and not attr.out_of_band
        if name == "copies":
            if single and attr.tag == ValueTag.INTEGER and 1 <= value <= o.copies_max:
                copies = value
                values["copies"] = value
            elif single and attr.tag == ValueTag.INTEGER and 1 <= value <= 999:
                refused.append(unsupported(attr))
            else:
                bad.append(unsupported(attr))
        elif name == "sides":
            if single and value in o.sides:
                duplex = value != "one-sided"
                values["sides"] = value
            elif single and value == "two-sided-long-edge":
                refused.append(unsupported(attr))
            else:
                bad.append(unsupported(attr))
        elif name == "print-color-mode":
            if single and value in MONO_MODES:
                want_color = False
                values[name] = "monochrome"
            elif single and value == "auto":
                want_color = color
            elif single and value == "color" and color:
                want_color = True
            else:
                bad.append(unsupported(attr))
        elif name in ("media", "media-col"):
            found = _media_of(value) if single else None
            if found is None:
                bad.append(unsupported(attr))
            elif found not in o.media:
                refused.append(unsupported(attr))
            else:
                media = found
                values["media"] = MEDIA_SIZES[found][0]
        elif name == "printer-resolution":
            ok = (
                single
                and isinstance(value, Resolution)
                and value.x == value.y
                and value.units == ResolutionUnits.DOTS_PER_INCH
                and value.x in o.resolutions
            )
            if ok:
                dpi = value.x
                values[name] = dpi
            else:
                bad.append(unsupported(attr))
        elif name == "job-hold-until":
            if single and value == "indefinite":
                hold = True
                values[name] = value
            elif single and value == "no-hold" and not follow_me:
                hold = False
            else:
                # day-time, evening, ...: held until released instead (substituted)
                bad.append(unsupported(attr))
                hold = True
                values[name] = "indefinite"
        elif name == "page-ranges":
            ranges = [v for v in attr.values if isinstance(v, Range)]
            ordered = all(
                1 <= r.lower <= r.upper and (i == 0 or ranges[i - 1].upper < r.lower)
                for i, r in enumerate(ranges)
            )
            if ranges and len(ranges) == len(attr.values) and ordered:
                page_ranges = ranges
                values[name] = [[r.lower, r.upper] for r in ranges]
            else:
                bad.append(unsupported(attr))
        elif name in ACCEPTED_AS_IS:
            if not all(v in ACCEPTED_AS_IS[name] for v in attr.values):
                bad.append(unsupported(attr))
        elif name in IGNORED:
            continue
        else:
            bad.append(unsupported(name))
    options = JobOptions(
        color=want_color,
        copies=copies,
        duplex=duplex,
        media=media,
        dpi=dpi,
        hold=hold,
        follow_me=follow_me,
    )
    return Template(
        options=options, values=values, unsupported=bad, ranges=page_ranges, refused=refused
    )


# -- a job's attributes ------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A queue's IPP job as a client sees it."""

    row: IppJobRow
    job: PrintJobRow | None
    state: IppJobState
    message: str


def view(row: IppJobRow, job: PrintJobRow | None) -> JobView:
    if job is not None:
        state = ipp_state(job.state, job.reason)
        # In the words the pages use (issue 16): "Stopped at the printer. The printer
        # ran out of paper. …" rather than `paper_out`.
        said = words.job_said(job.state, job.reason)
        message = f"{said.label}. {said.reason or said.text}".strip()
    elif row.state == "pending_document":
        state = IppJobState(3, ("job-incoming",))
        message = "waiting for the document"
    elif row.state == "canceled":
        state = IppJobState(CANCELED, ("job-canceled-by-user",))
        message = row.reason or "canceled"
    else:
        state = IppJobState(ABORTED, ("aborted-by-system",))
        message = row.reason or "aborted"
    return JobView(row=row, job=job, state=state, message=message[:255])


def _epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def job_attributes(v: JobView, *, printer_uri: str, visible: bool) -> list[Attribute]:
    """Every attribute of the job; `visible`: the caller may see its name and owner."""
    row, job = v.row, v.job
    finished = job.finished_at if job is not None else row.finished_at
    started = job.created_at if job is not None else None
    kb = (job.bytes + 1023) // 1024 if job is not None else 0
    attrs = [
        Attribute("job-id", ValueTag.INTEGER, row.job_number),
        Attribute("job-uri", ValueTag.URI, f"{printer_uri}/{row.job_number}"),
        Attribute("job-printer-uri", ValueTag.URI, printer_uri),
        Attribute("job-uuid", ValueTag.URI, f"urn:uuid:{row.uuid}"),
        Attribute("job-state", ValueTag.ENUM, v.state.state),
        Attribute("job-state-reasons", ValueTag.KEYWORD, list(v.state.reasons)),
        Attribute("job-state-message", ValueTag.TEXT, v.message),
        Attribute("job-printer-up-time", ValueTag.INTEGER, int(time.time())),
        Attribute("time-at-creation", ValueTag.INTEGER, _epoch(row.created_at)),
        Attribute("date-time-at-creation", ValueTag.DATE_TIME, row.created_at),
        Attribute("number-of-documents", ValueTag.INTEGER, 1 if job is not None else 0),
        Attribute("job-k-octets", ValueTag.INTEGER, kb),
    ]
    if started is not None:
        attrs.append(Attribute("time-at-processing", ValueTag.INTEGER, _epoch(started)))
        attrs.append(Attribute("date-time-at-processing", ValueTag.DATE_TIME, started))
    else:
        attrs.append(Attribute("time-at-processing", ValueTag.NO_VALUE))
        attrs.append(Attribute("date-time-at-processing", ValueTag.NO_VALUE))
    if finished is not None:
        attrs.append(Attribute("time-at-completed", ValueTag.INTEGER, _epoch(finished)))
        attrs.append(Attribute("date-time-at-completed", ValueTag.DATE_TIME, finished))
    else:
        attrs.append(Attribute("time-at-completed", ValueTag.NO_VALUE))
        attrs.append(Attribute("date-time-at-completed", ValueTag.NO_VALUE))
    if job is not None:
        sheets = job.pages_printed
        attrs.append(Attribute("job-impressions-completed", ValueTag.INTEGER, job.pages_printed))
        attrs.append(Attribute("job-media-sheets-completed", ValueTag.INTEGER, sheets))
        if job.page_count is not None:
            attrs.append(Attribute("job-impressions", ValueTag.INTEGER, job.page_count))
    values = row.attributes.get("values", {})
    if visible:
        attrs.append(Attribute("job-name", ValueTag.NAME, row.name or "untitled"))
        attrs.append(Attribute("job-originating-user-name", ValueTag.NAME, row.owner))
        fmt = row.attributes.get("document-format")
        if fmt:
            attrs.append(Attribute("document-format-supplied", ValueTag.MIME_MEDIA_TYPE, fmt))
    attrs += template_attributes(values)
    return attrs


def template_attributes(values: dict[str, Any]) -> list[Attribute]:
    """A job's stored Job Template values (as `job_template` accepted them), as attributes."""
    attrs: list[Attribute] = []
    if "copies" in values:
        attrs.append(Attribute("copies", ValueTag.INTEGER, int(values["copies"])))
    for name in ("sides", "print-color-mode", "media", "job-hold-until"):
        if name in values:
            attrs.append(Attribute(name, ValueTag.KEYWORD, str(values[name])))
    if "printer-resolution" in values:
        dpi = int(values["printer-resolution"])
        attrs.append(Attribute("printer-resolution", ValueTag.RESOLUTION, Resolution(dpi, dpi)))
    if "page-ranges" in values:
        ranges = [Range(int(lo), int(hi)) for lo, hi in values["page-ranges"]]
        attrs.append(Attribute("page-ranges", ValueTag.RANGE_OF_INTEGER, ranges))
    return attrs
