"""Typed HTTP client of the print service (server C), for docgen (S1522), the device
(PRT001, seed 003 FIG. 9) and the CLI.

Two halves, each with the caller's bearer token:

- `health` (no token), and the jobs API (SVC001 and after): `submit` (a PDF upload) /
  `submit_url`, `show`, `list`, `cancel`, `release`, `preview`;
- the device API (`/api/device/…`): `work` (`Work`: the jobs, each still to parse,
  and the Identify-Printer requests, `IdentifyRequest`, handed over once), `started`,
  `result`, `upload_preview`, `held`, `release_at_printer`, `set_push_url`; and
  `converted`, the converted data fetched with the job's conversion token (FIG. 10).

A refusal is a `PrintServiceError` carrying the status, the wire code and the
service's reason; no answer at all (refused, timed out), or a 5xx, is its subclass
`PrintServiceUnreachable`: try again later. Answers the device API gives on purpose
(409: the job is no longer the printer's) come back as `False`, not as errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from printcloud.core.http import client as http_client
from printcloud.core.http import error_of

__all__ = [
    "IdentifyRequest",
    "Job",
    "PrintClient",
    "PrintServiceError",
    "PrintServiceUnreachable",
    "Work",
    "refused",
]


class PrintServiceError(Exception):
    """The print service refused (`status`, wire `error`, `description`), or the request
    could not be made (`status` None)."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str = "", description: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description

    @property
    def reason(self) -> str:
        """The service's own words for the refusal, for a caller's record."""
        return self.description or self.error or str(self)


class PrintServiceUnreachable(PrintServiceError):
    """No answer at all, or a 5xx: the service is not there or not well; retry later."""


@dataclass(frozen=True)
class Job:
    """A print job as the service shows it (`GET /api/jobs/{id}`); `data` is the whole answer."""

    job_id: str
    printer_id: str
    state: str
    reason: str | None
    pages_printed: int
    data: dict[str, Any]

    @classmethod
    def of(cls, data: Any) -> Job:
        try:
            return cls(
                job_id=str(data["job_id"]),
                printer_id=str(data.get("printer_id") or ""),
                state=str(data.get("state") or ""),
                reason=data.get("reason"),
                pages_printed=int(data.get("pages_printed") or 0),
                data=dict(data),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PrintServiceError(f"malformed job {data!r:.200}: {exc}") from exc


@dataclass(frozen=True)
class IdentifyRequest:
    """An Identify-Printer request for the printer (PWG 5100.13 §4.1.2): `actions`
    (`display`, `sound`), the client's `message` (at most 127 octets, no control
    characters), who asked and when."""

    actions: tuple[str, ...]
    message: str
    requested_by: str
    requested_at: datetime

    @classmethod
    def of(cls, data: Any) -> IdentifyRequest:
        try:
            actions = data["actions"]
            if not isinstance(actions, list):
                raise TypeError("actions is not a list")
            return cls(
                actions=tuple(str(a) for a in actions),
                message=str(data.get("message") or ""),
                requested_by=str(data.get("requested_by") or ""),
                requested_at=datetime.fromisoformat(str(data["requested_at"])),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PrintServiceError(f"malformed identify request {data!r:.200}: {exc}") from exc


@dataclass(frozen=True)
class Work:
    """The device's poll (¶0112): its `jobs`, as the service sends them (one item may be
    malformed without spoiling the others: the caller parses each), and its `identify`
    requests, which the service has now forgotten (a second poll does not see them)."""

    jobs: list[Any]
    identify: list[IdentifyRequest]


def refused(what: str, resp: httpx.Response) -> PrintServiceError:
    """`what: HTTP 404 (not_found: why)`; a 5xx is `PrintServiceUnreachable`."""
    code, description = error_of(resp)
    if not code and not description:
        description = resp.text.strip()[:500]
    detail = ": ".join(part for part in (code, description) if part)
    kind = PrintServiceUnreachable if resp.status_code >= 500 else PrintServiceError
    return kind(
        f"{what}: HTTP {resp.status_code}" + (f" ({detail})" if detail else ""),
        status=resp.status_code,
        error=code,
        description=description,
    )


class PrintClient:
    """The print service at `base_url` (e.g. `http://127.0.0.1:8000/printing`)."""

    def __init__(
        self, base_url: str, *, http: httpx.Client | None = None, timeout: float = 30
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or http_client(timeout=timeout)

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> PrintClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, method: str, url: str, *, token: str, **kwargs: Any) -> httpx.Response:
        """One request with `token`; only a failure to get any answer is raised here."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise PrintServiceUnreachable(
                f"{method} {url}: {exc.__class__.__name__}: {exc}"
            ) from exc
        except httpx.InvalidURL as exc:
            raise PrintServiceError(f"{method} {url}: invalid URL ({exc})") from exc

    def _api(self, method: str, path: str, *, token: str, **kwargs: Any) -> httpx.Response:
        return self.send(method, f"{self.base_url}/api/{path}", token=token, **kwargs)

    @staticmethod
    def _json(resp: httpx.Response, what: str, *ok: int) -> Any:
        if resp.status_code not in (ok or (200,)):
            raise refused(what, resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise PrintServiceError(f"{what}: the answer is not JSON") from exc

    def health(self) -> dict[str, Any]:
        """`GET /healthz` (no token): the service's state and its conversion workers."""
        try:
            resp = self.http.get(f"{self.base_url}/healthz")
        except httpx.TransportError as exc:
            raise PrintServiceUnreachable(f"health: {exc.__class__.__name__}: {exc}") from exc
        data = self._json(resp, "health")
        if not isinstance(data, dict):
            raise PrintServiceError("health: the answer is not a JSON object")
        return data

    # -- jobs (SVC001 and the user's view)

    def submit(
        self,
        *,
        token: str,
        printer_id: str,
        pdf: bytes,
        filename: str = "document.pdf",
        title: str = "",
        options: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Job:
        """SVC001: a PDF upload with print settings (`color`, `copies`, `duplex`,
        `media`, `dpi`, `hold` as form values); the job as accepted (202)."""
        fields = {**(options or {}), "printer_id": printer_id, "title": title}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        resp = self._api(
            "POST",
            "jobs",
            token=token,
            data=fields,
            files={"file": (filename, pdf, "application/pdf")},
            **extra,
        )
        return Job.of(self._json(resp, "print job", 202))

    def submit_url(
        self,
        *,
        token: str,
        printer_id: str,
        url: str,
        title: str = "",
        options: dict[str, Any] | None = None,
    ) -> Job:
        """SVC001 by URL: the service's workers download the PDF from `url`."""
        body = {"printer_id": printer_id, "url": url, "title": title, "options": options or {}}
        resp = self._api("POST", "jobs", token=token, json=body)
        return Job.of(self._json(resp, "print job", 202))

    def show(self, job_id: str, *, token: str) -> Job:
        resp = self._api("GET", f"jobs/{job_id}", token=token)
        return Job.of(self._json(resp, f"job {job_id}"))

    def list_jobs(
        self, *, token: str, mine: bool = False, state: str | None = None, limit: int = 100
    ) -> list[Job]:
        params: dict[str, Any] = {"mine": "true" if mine else "false", "limit": limit}
        if state:
            params["state"] = state
        resp = self._api("GET", "jobs", token=token, params=params)
        return [Job.of(job) for job in self._json(resp, "job list")["jobs"]]

    def printers(self, *, token: str) -> list[dict[str, Any]]:
        """`GET /api/printers` (scope `print`): the token's tenant's printers."""
        data = self._json(self._api("GET", "printers", token=token), "printer list")
        found = data.get("printers") if isinstance(data, dict) else None
        if not isinstance(found, list):
            raise PrintServiceError("printer list: the answer has no list of printers")
        return [p for p in found if isinstance(p, dict) and p.get("printer_id")]

    def cancel(self, job_id: str, *, token: str) -> Job:
        resp = self._api("POST", f"jobs/{job_id}/cancel", token=token)
        return Job.of(self._json(resp, f"cancel of job {job_id}"))

    def release(self, job_id: str, *, token: str) -> Job:
        """A held job goes on to be converted and printed (its owner's release)."""
        resp = self._api("POST", f"jobs/{job_id}/release", token=token)
        return Job.of(self._json(resp, f"release of job {job_id}"))

    def preview(self, job_id: str, number: int, *, token: str) -> bytes:
        """The PNG preview of a printed page."""
        resp = self._api("GET", f"jobs/{job_id}/pages/{number}/preview", token=token)
        if resp.status_code != 200:
            raise refused(f"preview of job {job_id} page {number}", resp)
        return resp.content

    # -- the device API (PRT001)

    def _device(self, method: str, path: str, *, token: str, **kwargs: Any) -> httpx.Response:
        return self._api(method, f"device/{path}", token=token, **kwargs)

    def work(self, printer_id: str, *, token: str) -> Work:
        """S109/¶0112: the printer's work list and its identify requests (`Work`)."""
        resp = self._device("GET", f"printers/{printer_id}/work", token=token)
        data = self._json(resp, f"work list of printer {printer_id}")
        jobs = self._jobs(data, "work list")
        pending = data.get("identify") or []
        if not isinstance(pending, list):
            raise PrintServiceError("the work list: identify is not a list")
        return Work(jobs=jobs, identify=[IdentifyRequest.of(each) for each in pending])

    def started(self, job_id: str, *, token: str, printer_id: str) -> bool:
        """S1401: the printer starts; False when the job is no longer printable (409)."""
        resp = self._device(
            "POST", f"jobs/{job_id}/started", token=token, json={"printer_id": printer_id}
        )
        if resp.status_code == 409:
            return False
        self._json(resp, f"start of job {job_id}")
        return True

    def result(
        self,
        job_id: str,
        *,
        token: str,
        printer_id: str,
        outcome: str,
        reason: str | None,
        pages_printed: int,
        message: str,
    ) -> str | None:
        """S1413–S1415: how the job ended. None when recorded; the service's reason when
        the job was already final there (409: cancelled by its owner, say)."""
        body = {
            "printer_id": printer_id,
            "outcome": outcome,
            "reason": reason,
            "pages_printed": pages_printed,
            "message": message,
        }
        resp = self._device("POST", f"jobs/{job_id}/result", token=token, json=body)
        if resp.status_code == 409:
            return error_of(resp)[1] or "already final"
        self._json(resp, f"result of job {job_id}")
        return None

    def upload_preview(self, job_id: str, number: int, png: bytes, *, token: str) -> bool:
        """A printed page's preview for the user; False when the job is no longer wanted."""
        resp = self._device(
            "PUT",
            f"jobs/{job_id}/pages/{number}/preview",
            token=token,
            content=png,
            headers={"Content-Type": "image/png"},
        )
        if resp.status_code == 409:
            return False
        if resp.status_code not in (200, 201, 204):
            raise refused(f"preview of job {job_id} page {number}", resp)
        return True

    def held(self, printer_id: str, *, token: str) -> list[Any]:
        """The held jobs of the token's user for this printer (each parsed by the caller)."""
        resp = self._device("GET", f"printers/{printer_id}/held", token=token)
        return self._jobs(self._json(resp, f"held jobs at printer {printer_id}"), "held jobs")

    def release_at_printer(self, job_id: str, *, token: str, printer_id: str) -> str:
        """Release a held job at the printer where its owner stands; its new state."""
        resp = self._device(
            "POST", f"jobs/{job_id}/release", token=token, json={"printer_id": printer_id}
        )
        data = self._json(resp, f"release of job {job_id}")
        return str(data.get("state", "")) if isinstance(data, dict) else ""

    def set_push_url(self, printer_id: str, url: str | None, *, token: str) -> None:
        """S109: where the service pushes print requests for this printer; None: it polls."""
        resp = self._device(
            "PUT", f"printers/{printer_id}/push_url", token=token, json={"push_url": url}
        )
        if resp.status_code != 200:
            raise refused(f"push URL of printer {printer_id}", resp)

    def converted(self, url: str, *, token: str, what: str) -> httpx.Response:
        """S1404/S1406: converted data (metafile, page) at `url`, with the job's
        conversion token; any answer but a 5xx is the caller's to read (a 401 is a
        token refused or timed out, FIG. 10)."""
        resp = self.send("GET", url, token=token)
        if resp.status_code >= 500:
            raise refused(what, resp)
        return resp

    @staticmethod
    def _jobs(data: Any, what: str) -> list[Any]:
        try:
            jobs = data["jobs"]
        except (KeyError, TypeError) as exc:
            raise PrintServiceError(f"the {what} is not {{'jobs': [...]}}") from exc
        if not isinstance(jobs, list):
            raise PrintServiceError(f"the {what}: jobs is not a list")
        return jobs
