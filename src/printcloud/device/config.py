"""What a virtual printer is (`DeviceConfig`), the faults it can be told to have
(S1411), and the device's error tree:

    DeviceError              the print service or the issuer answered something unusable
    ├── ServiceUnreachable   no answer at all, or a 5xx: retried at the next poll
    └── CardError            (cards.py) the issuer refused a card login or registration
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from printcloud.device.raster import A3, A4, LETTER, Halftone, Media

__all__ = [
    "FAULT_NAMES",
    "MEDIA",
    "SAFE_ID",
    "TIMEOUT",
    "DeviceConfig",
    "DeviceError",
    "Fault",
    "ServiceUnreachable",
]

#: What the panel can report (S1411): no paper, no toner, an engine fault, a user's cancel.
FAULT_NAMES = ("paper_out", "toner_out", "engine_error", "user_cancel")
MEDIA: dict[str, Media] = {
    "A4": A4,
    "A3": A3,
    "A5": Media("A5", 148.0, 210.0),
    "Letter": LETTER,
    "Legal": Media("Legal", 215.9, 355.6),
}
#: A job ID becomes a folder name: nothing that could climb out of `out_dir`.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class DeviceError(Exception):
    """The print service or the issuer answered something the agent cannot use.

    `status` is the HTTP status when there was an answer; `error` its wire code.
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class ServiceUnreachable(DeviceError):
    """No answer at all (refused, timed out, DNS): the agent retries at the next poll."""


# -- faults (S1411) --------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """`name@page`: before printing page `page`, the printer reports `name` and stops."""

    name: str
    page: int

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`"paper_out@2"` → `Fault("paper_out", 2)`; a `ValueError` names what is wrong."""
        name, sep, page = text.strip().partition("@")
        if not sep or not page.strip().isdigit():
            raise ValueError(f"fault {text!r}: expected NAME@PAGE, e.g. paper_out@2")
        if name not in FAULT_NAMES:
            raise ValueError(f"fault {text!r}: NAME is one of {', '.join(FAULT_NAMES)}")
        number = int(page)
        if number < 1:
            raise ValueError(f"fault {text!r}: PAGE counts from 1")
        return cls(name, number)

    def __str__(self) -> str:
        return f"{self.name}@{self.page}"


# -- configuration -----------------------------------------------------------------


@dataclass
class DeviceConfig:
    """One printer: who it is at the issuer, where it prints to, how it behaves."""

    server: str  # e.g. http://127.0.0.1:8000 ; the print service is {server}/printing
    tenant_id: str
    printer_id: str
    client_id: str
    client_secret: str
    out_dir: Path
    issuer: str = "idp-a"
    poll_interval: float = 2.0
    halftone: Halftone = "ordered"
    faults: list[Fault] = field(default_factory=list)
    #: `HOST:PORT` of the push listener (port 0: any free one); None: poll only.
    listen: str | None = None
    #: Register the listener's URL as the printer's push_url (and clear it on close).
    register_push: bool = True
    #: CMYK output profile; None: raster's default (Ghostscript's), else the formula.
    profile: Path | None = None
    #: A sink printer (issue 13): fetches every page, checks it against the metafile and
    #: reports it printed, with no raster and no engine output — a stand-in for a real
    #: printer when measuring the platform, whose printers are other machines.
    sink: bool = False
    #: Send each printed page's thumbnail for the user's job page (S110); None: yes,
    #: except for a sink printer.
    previews: bool | None = None
    #: INFRA mode (`infra.py`): the office printer to forward each fetched job to
    #: (`ipp://host:port/path`), instead of printing it here; None: print here.
    forward: str | None = None
    #: Seconds the forward printer may take for one job before it counts as stuck.
    forward_deadline: float = 300.0

    @property
    def sends_previews(self) -> bool:
        return self.previews if self.previews is not None else not self.sink

    @property
    def printing_url(self) -> str:
        return f"{self.server.rstrip('/')}/printing"

    @property
    def issuer_url(self) -> str:
        return f"{self.server.rstrip('/')}/{self.issuer}"
