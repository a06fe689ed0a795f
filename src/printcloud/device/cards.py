"""The printer's card reader: seed 004's information processing apparatus (US 8,225,375,
claim 1), and what a user does once logged in: release their held jobs at this printer.

- **second request unit**: `CardReader.tap` sends the card ID to the issuer's token
  endpoint (the card grant, with the device client's credentials);
- **result acquiring unit** / **permission unit**: a known card's answer is a
  `CardSession` — a token that acts for the card's user as the device's local
  user (seed 001) — and the user may use the printer;
- the issuer's **inquiry** for an unknown card comes back as `RegistrationNeeded`;
- **registration request unit**: `CardReader.register` sends the card again with
  the directory user name and password typed at the printer.

Refusals are `CardError`s carrying the server's message:

    DeviceError
    └── CardError                 the issuer refused the card login or registration
        ├── InvalidCard           not a card ID the issuer accepts (400 invalid_request)
        ├── InvalidCredentials    the directory refused the user name or password (401)
        ├── DirectoryUnavailable  the directory did not answer (503); try again later
        ├── LockedOut             too many failures (429); `retry_after` seconds to wait
        └── SessionEnded          the login is over (logged out, or its token expired)

With a session, `held()` lists the user's held jobs for this printer and
`release()` / `release_all()` let them go on to be converted and printed (the
print service's device API; it answers 403 unless the tenant's local
authentication cooperation mode is on). Everything here is plain calls, no
prompts: the console (`console.py`) and the web panel (`panel.py`) are two faces
of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

from printcloud.auth.client import OAuthError
from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.device.api import as_device_error, device_errors, issuer_client, print_client
from printcloud.device.config import (
    SAFE_ID,
    TIMEOUT,
    DeviceConfig,
    DeviceError,
    ServiceUnreachable,
)

__all__ = [
    "CARD_GRANT",
    "CardError",
    "CardReader",
    "CardSession",
    "CardUser",
    "DirectoryUnavailable",
    "HeldJob",
    "InvalidCard",
    "InvalidCredentials",
    "LockedOut",
    "RegistrationNeeded",
    "SessionEnded",
]

log = get_logger("device.cards")

T = TypeVar("T")

#: The token endpoint's grant type for a card login (seed 004), as the issuer names it.
CARD_GRANT = "urn:printcloud:params:oauth:grant-type:id-card"


class CardError(DeviceError):
    """The issuer refused the card login or registration; the message is its reason."""


class InvalidCard(CardError):
    """Not a card ID the issuer accepts (length, characters)."""


class InvalidCredentials(CardError):
    """The directory refused the user name or password; nothing was registered."""


class DirectoryUnavailable(CardError):
    """The tenant's directory did not answer; the card can be registered later."""


class LockedOut(CardError):
    """Too many failed attempts for this card, account or printer: wait `retry_after` s."""

    def __init__(self, message: str, *, retry_after: int, status: int = 429) -> None:
        super().__init__(message, status=status, error="rate_limited")
        self.retry_after = retry_after


class SessionEnded(CardError):
    """The user is no longer logged in at the printer: tap the card again."""


@dataclass(frozen=True)
class CardUser:
    """Who the card belongs to: the directory user name and a name to greet them by."""

    id: str
    name: str


@dataclass(frozen=True)
class RegistrationNeeded:
    """The issuer's inquiry: the card is unknown; register it with directory credentials."""

    card_id: str = field(repr=False)
    message: str

    @property
    def hint(self) -> str:
        """The card's last characters, as the issuer shows them, instead of the whole ID."""
        return f"…{self.card_id.replace(' ', '').replace(':', '').upper()[-4:]}"


@dataclass(frozen=True)
class HeldJob:
    """A job waiting for its owner at this printer."""

    job_id: str
    title: str
    pages: int | None
    copies: int
    color: bool
    submitted: datetime | None

    @classmethod
    def parse(cls, data: Any) -> HeldJob:
        try:
            options = data.get("options") or {}
            created = data.get("created_at")
            job = cls(
                job_id=str(data["job_id"]),
                title=str(data.get("title") or data["job_id"]),
                pages=int(data["page_count"]) if data.get("page_count") is not None else None,
                copies=max(1, int(options.get("copies") or 1)),
                color=bool(options.get("color", True)),
                submitted=datetime.fromisoformat(str(created)) if created else None,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DeviceError(f"malformed held job {data!r:.200}: {exc}") from exc
        if not SAFE_ID.match(job.job_id):
            raise DeviceError(f"held job id {job.job_id!r:.80} is not a job id")
        return job

    @property
    def submitted_text(self) -> str:
        """When it was submitted, in the printer's local time."""
        if self.submitted is None:
            return ""
        return self.submitted.astimezone().strftime("%Y-%m-%d %H:%M")


class CardReader:
    """The card reader of one printer: logs users in by card and registers new cards."""

    def __init__(
        self, config: DeviceConfig, *, http: httpx.Client | None = None, scope: str | None = None
    ) -> None:
        self.config = config
        #: None: every scope of the device client (`device`, and `print` if it has it).
        self.scope = scope
        self._own_http = http is None
        self._http = http or http_client(timeout=TIMEOUT)
        self._issuer = issuer_client(config, self._http)
        self._printing = print_client(config, self._http)

    def __enter__(self) -> CardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # -- seed 004: login, inquiry, registration

    def tap(self, card_id: str) -> CardSession | RegistrationNeeded:
        """A card is presented: its user's session, or the inquiry to register it."""
        return self._grant(card_id, {})

    def register(self, card_id: str, username: str, password: str) -> CardSession:
        """Register the card to the directory user (checked by the issuer) and log them in."""
        if not username.strip() or not password:
            raise InvalidCredentials("type your directory user name and password")
        answer = self._grant(card_id, {"username": username.strip(), "password": password})
        if not isinstance(answer, CardSession):  # the issuer never asks again with credentials
            raise CardError("the issuer asked for registration again", status=400)
        return answer

    def _grant(self, card_id: str, extra: dict[str, str]) -> CardSession | RegistrationNeeded:
        card_id = card_id.strip()
        if not card_id:
            raise InvalidCard("no card ID: tap a card or type its ID", status=400)
        params = {"card_id": card_id, **extra}
        if self.scope:
            params["scope"] = self.scope
        try:
            answer = self._issuer.grant(CARD_GRANT, **params)
        except OAuthError as exc:
            return self._refused(card_id, exc, registering=bool(extra))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise as_device_error("card login", exc) from exc
        return CardSession._from_answer(self, answer)

    def _refused(self, card_id: str, exc: OAuthError, *, registering: bool) -> RegistrationNeeded:
        """The issuer's refusal of a card login: the inquiry, or the right `CardError`."""
        code, text, status = exc.error, exc.description, exc.status
        if status == 400 and code == "registration_required" and not registering:
            return RegistrationNeeded(card_id, text or "this card is not registered")
        if status == 400 and code == "invalid_request":
            raise InvalidCard(text or "not a card ID", status=status, error=code)
        if status == 401 and code == "invalid_credentials":
            raise InvalidCredentials(
                text or "the directory refused that user name or password",
                status=status,
                error=code,
            )
        if status == 429:
            wait = exc.retry_after or 60
            raise LockedOut(
                f"{text or 'too many failed attempts'} (locked out: try again in {wait} s)",
                retry_after=wait,
            )
        if status == 503 and code == "directory_unavailable":
            raise DirectoryUnavailable(
                text or "the directory is not answering; try again later",
                status=status,
                error=code,
            )
        error = as_device_error("card login", exc)
        if status >= 500:
            raise ServiceUnreachable(str(error), status=status)
        if code in ("invalid_client", "unauthorized_client"):
            raise CardError(
                f"the issuer refused this printer's client {self.config.client_id}"
                f" ({text or code})",
                status=status,
                error=code,
            )
        raise CardError(str(error), status=status, error=code)

    # -- the print service's device API, as the logged-in user

    def _call(self, session: CardSession, what: str, request: Callable[[str], T]) -> T:
        token = session._bearer()
        try:
            with device_errors(what):
                return request(token)
        except DeviceError as exc:
            if exc.status != 401:
                raise
            session._forget()
            raise SessionEnded(
                "your login at this printer has ended: tap your card again", status=401
            ) from exc

    def _revoke(self, token: str) -> None:
        """RFC 7009: the user walked away; their token should not outlive the session."""
        try:
            self._issuer.revoke(token, token_type_hint="access_token")  # noqa: S106
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("card session token not revoked: %s", as_device_error("revocation", exc))


class CardSession:
    """A user logged in at the printer by card: their held jobs for this printer."""

    def __init__(
        self, reader: CardReader, *, user: CardUser, token: str, expires_in: float, registered: bool
    ) -> None:
        self.reader = reader
        self.user = user
        #: True when this login registered the card (first use).
        self.registered = registered
        self._token: str | None = token
        self._expires = time.monotonic() + max(1.0, expires_in)
        # The print service lists a released job as held until its workflow moves it on;
        # released twice, it would get two release messages: once is enough.
        self._released: set[str] = set()

    def __repr__(self) -> str:
        return f"CardSession(user={self.user!r}, active={self.active})"

    @classmethod
    def _from_answer(cls, reader: CardReader, body: dict[str, Any]) -> CardSession:
        try:
            local = body["local_user"]
            user = CardUser(id=str(local["id"]), name=str(local.get("name") or local["id"]))
            session = cls(
                reader,
                user=user,
                token=str(body["access_token"]),
                expires_in=float(body.get("expires_in") or 300),
                registered=bool(body.get("registered", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeviceError("the issuer's card login answer has no token or user") from exc
        log.info(
            "card login",
            extra={"fields": {"user": user.id, "registered": session.registered}},
        )
        return session

    @property
    def token(self) -> str | None:
        """The access token acting for the user; None once logged out or expired."""
        if self._token is not None and time.monotonic() >= self._expires:
            self._token = None
        return self._token

    @property
    def active(self) -> bool:
        return self.token is not None

    def _bearer(self) -> str:
        token = self.token
        if token is None:
            raise SessionEnded("you are logged out: tap your card again", status=401)
        return token

    def _forget(self) -> None:
        self._token = None

    def held(self) -> list[HeldJob]:
        """The user's held jobs for this printer, oldest first."""
        printer = self.reader.config.printer_id
        printing = self.reader._printing
        jobs = self.reader._call(
            self, "held jobs", lambda token: printing.held(printer, token=token)
        )
        parsed = [HeldJob.parse(job) for job in jobs]
        return [job for job in parsed if job.job_id not in self._released]

    def release(self, job_id: str) -> str:
        """Release one held job at this printer; answers its new state. A job that is no
        longer held (cancelled, released elsewhere) is a `DeviceError` with status 409."""
        if not SAFE_ID.match(job_id):
            raise DeviceError(f"{job_id!r:.80} is not a job id", status=400)
        if job_id in self._released:
            raise DeviceError(f"job {job_id} is already released", status=409, error="conflict")
        printer = self.reader.config.printer_id
        printing = self.reader._printing
        state = self.reader._call(
            self,
            "release",
            lambda token: printing.release_at_printer(job_id, token=token, printer_id=printer),
        )
        self._released.add(job_id)
        log.info("job released at the printer", extra={"fields": {"job_id": job_id}})
        return state

    def release_all(self) -> list[HeldJob]:
        """Release every held job; answers those released (one that stopped being held
        meanwhile is skipped, any other failure is raised)."""
        released = []
        for job in self.held():
            try:
                self.release(job.job_id)
            except DeviceError as exc:
                if exc.status not in (404, 409):
                    raise
                log.info("job %s no longer held: %s", job.job_id, exc)
                continue
            released.append(job)
        return released

    def logout(self) -> None:
        """Forget the token (and revoke it at the issuer); later calls raise `SessionEnded`."""
        token, self._token = self._token, None
        if token is not None:
            self.reader._revoke(token)
            log.info("card logout", extra={"fields": {"user": self.user.id}})
