"""Typed HTTP client of docgen's batch-print endpoint, for the CRM (seed 000,
S1501–S1509): `tenant_ID` in the URL, the Digest challenge answered with
username = docgen's tenant ID and password = the tenant's secret key — and, for
a signed-in user's print request (FIG. 19, S1901), the user's session instead:
`Authorization: Bearer <idp-a token>` and the user's idp-b token in `X-CRM-Token`;
`own_request` reads that request back with the user's token, its print jobs as the
print service shows them to the user. For the print service's usage report (issue 18),
with the tenant administrator's idp-a token: `batch_runs` of a period and
`usage_report_pdf`, the report typeset by docgen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from printcloud.core.http import error_of


class BatchPrintRefused(Exception):
    """docgen refused the request: `status`, wire `error` and the reason."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Accepted:
    request_id: str
    tenant_id: str
    state: str


@dataclass(frozen=True)
class OwnRequest:
    """A user's own print request (`request`: docgen's BatchRequestRead as JSON) and its
    print jobs (`print_jobs`: each with `state`, `reason`, … or `error`)."""

    request: dict[str, Any]
    print_jobs: list[dict[str, Any]]


class DocgenClient:
    """docgen at `base_url` (e.g. http://127.0.0.1:8000/docgen)."""

    def __init__(self, base_url: str, *, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=30)

    def batch_print(
        self,
        *,
        tenant_id: str,
        secret_key: str,
        run_id: str | None = None,
        job: str = "",
        parameters: dict[str, Any] | None = None,
    ) -> Accepted:
        """S1502–S1509: request batch printing; answers once docgen has accepted it (S1525)."""
        body: dict[str, Any] = {"job": job, "parameters": parameters or {}}
        if run_id is not None:
            body["run_id"] = run_id
        resp = self.http.post(
            f"{self.base_url}/api/batch-print",
            params={"tenant_ID": tenant_id},
            json=body,
            auth=httpx.DigestAuth(tenant_id, secret_key),
        )
        return _accepted(resp)

    def user_print(
        self,
        *,
        tenant_id: str,
        print_token: str,
        crm_token: str,
        job: str = "",
        parameters: dict[str, Any] | None = None,
    ) -> Accepted:
        """FIG. 19: a signed-in user's print request, carrying their session — their
        idp-a access token (scope `print`) and their idp-b access token."""
        try:
            resp = self.http.post(
                f"{self.base_url}/api/batch-print",
                params={"tenant_ID": tenant_id},
                json={"job": job, "parameters": parameters or {}},
                headers={"Authorization": f"Bearer {print_token}", "X-CRM-Token": crm_token},
            )
        except httpx.HTTPError as exc:  # docgen down: the same refusal as its own 503
            raise BatchPrintRefused(503, "unavailable", f"docgen does not answer: {exc}") from exc
        return _accepted(resp)

    def choices(self, *, tenant_id: str, secret_key: str) -> Choices:
        """FIG. 6, area 604: the forms and printers a batch job may use, asked with the
        batch-print request's Digest credentials. Refused: `BatchPrintRefused`."""
        resp = self.http.get(
            f"{self.base_url}/api/batch-print/choices",
            params={"tenant_ID": tenant_id},
            auth=httpx.DigestAuth(tenant_id, secret_key),
        )
        if resp.status_code != 200:
            code, description = error_of(resp)
            raise BatchPrintRefused(resp.status_code, code or "error", description)
        data: dict[str, Any] = resp.json()
        printers = data.get("printers")
        return Choices(
            builtin_forms=[str(f) for f in data.get("builtin_forms", [])],
            forms=[str(f) for f in data.get("forms", [])],
            printers=None
            if printers is None
            else [
                PrinterChoice(
                    printer_id=str(p["printer_id"]),
                    name=str(p.get("name") or p["printer_id"]),
                    color=bool(p.get("color", True)),
                    location=str(p.get("location") or ""),
                )
                for p in printers
            ],
            printers_problem=str(data.get("printers_problem") or ""),
        )

    def own_request(self, request_id: str, *, print_token: str) -> OwnRequest:
        """FIG. 19: the user's own print request and its print jobs, read with their idp-a
        token; refused (404 for another's, 401 for an ended session) as BatchPrintRefused."""
        try:
            resp = self.http.get(
                f"{self.base_url}/api/print-requests/{request_id}",
                headers={"Authorization": f"Bearer {print_token}"},
            )
        except httpx.HTTPError as exc:
            raise BatchPrintRefused(503, "unavailable", f"docgen does not answer: {exc}") from exc
        if resp.status_code != 200:
            code, description = error_of(resp)
            raise BatchPrintRefused(resp.status_code, code or "error", description)
        data: dict[str, Any] = resp.json()
        return OwnRequest(request=dict(data["request"]), print_jobs=list(data["print_jobs"]))

    def batch_runs(self, *, token: str, start: str, end: str) -> BatchRuns:
        """The tenant's batch runs received from `start` to `end` (UTC days, the end
        excluded), for its administrator. Refused or unreachable: `BatchPrintRefused`."""
        data = self._get_json("/api/batch-runs", token=token, params={"start": start, "end": end})
        return BatchRuns(
            runs=[
                BatchRun(
                    request_id=str(r["request_id"]),
                    job=str(r.get("job") or ""),
                    received_at=datetime.fromisoformat(r["received_at"]),
                    state=str(r["state"]),
                    reason=r.get("reason"),
                    step=str(r.get("step") or ""),
                    print_job_ids=[str(j) for j in r.get("print_job_ids", [])],
                )
                for r in data["runs"]
            ],
            truncated=bool(data.get("truncated")),
        )

    def usage_report_pdf(self, *, token: str, report: dict[str, Any]) -> bytes:
        """`report` (docgen's `UsageReportCreate` as JSON) typeset as a PDF."""
        try:
            resp = self.http.post(
                f"{self.base_url}/api/usage-report",
                json=report,
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
        except httpx.HTTPError as exc:
            raise BatchPrintRefused(503, "unavailable", f"docgen does not answer: {exc}") from exc
        if resp.status_code != 200:
            code, description = error_of(resp)
            raise BatchPrintRefused(resp.status_code, code or "error", description)
        return resp.content

    def _get_json(self, path: str, *, token: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            resp = self.http.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise BatchPrintRefused(503, "unavailable", f"docgen does not answer: {exc}") from exc
        if resp.status_code != 200:
            code, description = error_of(resp)
            raise BatchPrintRefused(resp.status_code, code or "error", description)
        data: dict[str, Any] = resp.json()
        return data


@dataclass(frozen=True)
class BatchRun:
    """A batch run of the CRM: its documents are its print jobs (`print_job_ids`)."""

    request_id: str
    job: str
    received_at: datetime
    state: str
    reason: str | None
    step: str
    print_job_ids: list[str]


@dataclass(frozen=True)
class BatchRuns:
    runs: list[BatchRun]
    #: More runs in the period than docgen lists in one answer.
    truncated: bool


@dataclass(frozen=True)
class PrinterChoice:
    printer_id: str
    name: str
    color: bool
    location: str


@dataclass(frozen=True)
class Choices:
    """What a batch job of the tenant may use: docgen's built-in forms, the tenant's own,
    and its printers (None when docgen could not list them: `printers_problem` says why)."""

    builtin_forms: list[str]
    forms: list[str]
    printers: list[PrinterChoice] | None
    printers_problem: str


def _accepted(resp: httpx.Response) -> Accepted:
    """202 → Accepted; anything else → BatchPrintRefused with docgen's reason."""
    if resp.status_code != 202:
        code, description = error_of(resp)
        raise BatchPrintRefused(resp.status_code, code or "error", description)
    data: dict[str, Any] = resp.json()
    return Accepted(
        request_id=str(data["request_id"]),
        tenant_id=str(data["tenant_id"]),
        state=str(data["state"]),
    )
