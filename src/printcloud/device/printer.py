"""What both device protocols' printers share: settings, HTTP client, faults, events.

`DeviceAgent` (printcloud's JSON device API, seed 003) and `InfraAgent` (IPP INFRA,
PWG 5100.18) are one printer seen through two protocols. Both check the halftone
asked for, own their HTTP client unless given one, play the configured faults
once each, and hand display events to an optional hook that must never stop the
printer. Each closes its own protocol's session in `close`, then calls `_close_http`.
"""

from __future__ import annotations

from typing import Self

import httpx

from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.device.config import TIMEOUT, DeviceConfig, Fault
from printcloud.device.events import DeviceEvent, EventHook

log = get_logger("device.printer")


class Printer:
    """The protocol-independent half of a virtual printer."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        http: httpx.Client | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if config.halftone not in ("ordered", "error_diffusion"):
            raise ValueError(f"unknown halftone {config.halftone!r}")
        self.config = config
        self.on_event = on_event
        self._own_http = http is None
        self._http = http or http_client(timeout=TIMEOUT)
        self._faults = list(config.faults)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._close_http()

    def _close_http(self) -> None:
        if self._own_http:
            self._http.close()

    @property
    def pending_faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults)

    def _emit(self, event: DeviceEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a display's bug must not stop the printer
                log.exception("device event hook failed")

    def _take_fault(self, number: int) -> Fault | None:
        """The fault configured for page `number`, once: then the printer is "fixed"."""
        for fault in self._faults:
            if fault.page == number:
                self._faults.remove(fault)
                return fault
        return None
