"""A tenant's device clients, as idp-a's admin API lists them (issue 16, "printers in
the admin"): the OAuth clients a printer may be driven by (PRT001 signs in as one).

The printers page offers them in a select, and a printer added or changed through the
pages or the admin API must name one of them (`check`). The print service asks with its
own platform client's token (scope `admin`, system tenant: `PrintingRuntime.admin_token`)
and always names the caller's tenant, so another tenant's clients are never listed and
answer as unknown. The CLI checks in the issuer's database instead (`cli/admin/printer.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from printcloud.auth.client import OAuthError
from printcloud.core.errors import InvalidRequest, Unavailable
from printcloud.core.logs import get_logger

from .runtime import PrintingRuntime

log = get_logger("printing.device_clients")


@dataclass(frozen=True)
class DeviceClient:
    client_id: str
    name: str

    @property
    def label(self) -> str:
        """How the select shows it: its name, and its ID when that says more."""
        return self.name if self.name == self.client_id else f"{self.name} ({self.client_id})"


def list_device_clients(rt: PrintingRuntime, *, tenant_id: str) -> list[DeviceClient]:
    """The tenant's enabled device clients, by name. Unavailable (503) when idp-a does not
    answer. Blocking (HTTP): call it outside the event loop."""
    token = rt.admin_token
    if token is None:
        raise Unavailable("the print service is starting")
    try:
        try:
            listed = token.issuer.tenant_clients(token(), tenant_id)
        except OAuthError as exc:
            if exc.status != 401:
                raise
            listed = token.issuer.tenant_clients(token(renew=True), tenant_id)  # expired
    except (OAuthError, httpx.HTTPError) as exc:
        log.warning(
            "idp-a did not list a tenant's device clients",
            extra={"fields": {"tenant": tenant_id, "error": str(exc)[:200]}},
        )
        raise Unavailable(
            "the sign-in service did not list your device clients: try again shortly"
        ) from exc
    clients = [
        DeviceClient(str(c["client_id"]), str(c.get("name") or c["client_id"]))
        for c in listed
        if c.get("kind") == "device" and not c.get("disabled")
    ]
    return sorted(clients, key=lambda c: (c.name.casefold(), c.client_id))


def check(rt: PrintingRuntime, *, tenant_id: str, client_id: str) -> None:
    """`client_id` is an enabled device client of the tenant, or InvalidRequest (400)
    naming `client_id`. Blocking (HTTP)."""
    if not client_id:
        raise InvalidRequest("choose the printer's device client", field="client_id")
    known = {c.client_id for c in list_device_clients(rt, tenant_id=tenant_id)}
    if client_id not in known:
        raise InvalidRequest(
            f"client_id {client_id[:128]!r} is not a device client of this tenant",
            field="client_id",
        )
