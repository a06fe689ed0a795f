"""Request and response bodies of docgen's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .models import BatchRequest
from .service import KeyState, TokenState


class BatchRequestCreate(BaseModel):
    """The body of a batch-print request (all optional: the CRM may send none)."""

    model_config = ConfigDict(extra="forbid")

    #: The caller's ID for this run: calling again with it answers the same request.
    run_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    )
    #: The scheduled job's name (FIG. 6, 602).
    job: str = Field(default="", max_length=200)
    #: What the batch flow needs: form, query, print settings (FIG. 6, 604).
    parameters: dict[str, Any] = Field(default_factory=dict)


class BatchAccepted(BaseModel):
    """S1525: the request is accepted; the batch runs without the caller waiting."""

    request_id: str
    tenant_id: str
    state: str
    received_at: datetime


class StepRead(BaseModel):
    at: str
    step: str
    state: str
    detail: str


class BatchRequestRead(BaseModel):
    request_id: str
    tenant_id: str
    received_at: datetime
    source: str
    state: str
    reason: str | None
    run_id: str | None
    job: str
    parameters: dict[str, Any]
    steps: list[StepRead]
    print_job_ids: list[str]
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: BatchRequest) -> BatchRequestRead:
        return cls(
            request_id=row.request_id,
            tenant_id=row.tenant_id,
            received_at=row.received_at,
            source=row.source,
            state=row.state,
            reason=row.reason,
            run_id=row.run_id,
            job=row.job,
            # a user-initiated request's sealed session is not for reading back
            parameters={k: v for k, v in (row.parameters or {}).items() if k != "_session"},
            steps=[StepRead(**s) for s in row.steps or []],
            print_job_ids=list(row.print_job_ids or []),
            updated_at=row.updated_at,
            finished_at=row.finished_at,
        )


class UserPrintRequestRead(BaseModel):
    """A signed-in user's own print request (FIG. 19) and its print jobs, as the print
    service shows them to that user (asked with the user's own token)."""

    request: BatchRequestRead
    print_jobs: list[dict[str, Any]]


class BatchRequestList(BaseModel):
    requests: list[BatchRequestRead]


class SecretKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    issued: bool
    issued_at: datetime | None = None
    issued_by: str | None = None
    previous_valid_until: datetime | None = None

    @classmethod
    def of(cls, state: KeyState) -> SecretKeyRead:
        return cls.model_validate(state)


class TokenRead(BaseModel):
    """A stored token set as the admin sees it: who, when, until when — never the tokens."""

    model_config = ConfigDict(from_attributes=True)

    present: bool
    issuer: str | None = None
    tenant_id: str | None = None
    user: str | None = None
    scope: str | None = None
    expires_at: datetime | None = None
    set_at: datetime | None = None
    set_by: str | None = None
    refreshed_at: datetime | None = None
    refreshable: bool = False
    problem: str | None = None

    @classmethod
    def of(cls, state: TokenState) -> TokenRead:
        return cls.model_validate(state)


class BatchSettingsRead(BaseModel):
    """FIG. 8 / FIG. 10 for one tenant, without secrets."""

    tenant_id: str
    secret_key: SecretKeyRead
    crm_token: TokenRead
    print_token: TokenRead


class SecretKeyIssued(BaseModel):
    """S1405: the key, shown this once; docgen cannot show it again."""

    tenant_id: str
    secret_key: str
    issued_at: datetime
    previous_valid_until: datetime | None = None


class SecretKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: How long the current key stays valid beside the new one (0: not at all).
    overlap_hours: float = Field(default=7 * 24, ge=0, le=90 * 24)


class PrintTokenCreate(BaseModel):
    """FIG. 11 by API: the admin's idp-a authentication session ID (seed 000's AUTH_ID),
    in the body, never in the URL."""

    model_config = ConfigDict(extra="forbid")

    auth_id: str = Field(min_length=1, max_length=200)


class FormCreate(BaseModel):
    """A tenant form to upload: a Typst template fed the data of a built-in form's kind."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(description="invoice | statement: the data the form is fed")
    source: str = Field(min_length=1)


class FormRead(BaseModel):
    name: str
    kind: str
    uploaded_at: str
    uploaded_by: str
    size: int


class FormList(BaseModel):
    builtin: list[str]
    forms: list[FormRead]


class PrinterChoice(BaseModel):
    printer_id: str
    name: str
    color: bool
    location: str = ""


class BatchChoices(BaseModel):
    """What a CRM may choose for a batch job (FIG. 6, area 604): docgen's built-in forms,
    the tenant's own, and the printers its stored print token sees (null when they
    could not be listed, with why in `printers_problem`)."""

    builtin_forms: list[str]
    forms: list[str]
    printers: list[PrinterChoice] | None
    printers_problem: str = ""


# -- the usage report (issue 18): batch runs and the report's PDF ------------------------


class BatchRunRead(BaseModel):
    """One batch run of the CRM in a period, as the usage report shows it: its documents
    are its print jobs (`print_job_ids`), `step` the seed step it ended at."""

    request_id: str
    job: str
    received_at: datetime
    finished_at: datetime | None
    state: str
    reason: str | None
    step: str
    print_job_ids: list[str]

    @classmethod
    def of(cls, row: BatchRequest) -> BatchRunRead:
        steps = row.steps or []
        return cls(
            request_id=row.request_id,
            job=row.job,
            received_at=row.received_at,
            finished_at=row.finished_at,
            state=row.state,
            reason=row.reason,
            step=str(steps[-1].get("step", "")) if steps else "",
            print_job_ids=list(row.print_job_ids or []),
        )


class BatchRunList(BaseModel):
    runs: list[BatchRunRead]
    #: True when the period held more runs than a report lists (`service.MAX_RUNS`).
    truncated: bool


_Text = Field(default="", max_length=300)


class UsageLine(BaseModel):
    """A line of the report's table; amounts already in words (`12.34 EUR`)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=300)
    jobs: int = Field(ge=0)
    pages: int = Field(ge=0)
    impressions: int = Field(ge=0)
    color: int = Field(ge=0)
    mono: int = Field(ge=0)
    duplex: int = Field(ge=0)
    cost: str = Field(max_length=40)
    refunded: str = Field(max_length=40)
    net: str = Field(max_length=40)


class BatchRunLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received: str = Field(max_length=40)
    job: str = Field(default="", max_length=200)
    state: str = Field(max_length=20)
    reason: str = Field(default="", max_length=1000)
    documents: int = Field(ge=0)
    pages: int = Field(ge=0)


class UsageReportCreate(BaseModel):
    """A usage report to typeset (`POST /api/usage-report`): the print service's figures
    for a period, as its report page shows them."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=300)
    organisation: str = _Text
    start: str = Field(max_length=10)
    end: str = Field(max_length=10)
    by: str = Field(max_length=40)
    currency: str = Field(max_length=8)
    generated: str = Field(max_length=40)
    rows: list[UsageLine] = Field(max_length=5000)
    totals: UsageLine
    batch_runs: list[BatchRunLine] = Field(default_factory=list, max_length=5000)
    #: Why the batch runs are missing, when they could not be read.
    batch_note: str = Field(default="", max_length=1000)
