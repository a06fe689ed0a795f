"""The usage report as a PDF (issue 18), typeset with docgen's Typst compiler.

The print service owns the figures (`printing.accounting.reports`); it sends them here
(`POST /docgen/api/usage-report`, `DocgenClient.usage_report_pdf`), and the CLI calls
`render_pdf` in its own process. The template (`forms/usage_report.typ`) is the
platform's, not a tenant's: it renders in process on the shared compilers, reading its
data as JSON, so nothing in a name or a reason is ever read as Typst markup.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from printcloud.core.errors import InvalidRequest

from . import forms
from .schemas import UsageReportCreate


@cache
def usage_form() -> forms.Form:
    source = (
        resources.files("printcloud.docgen").joinpath("forms/usage_report.typ").read_text("utf-8")
    )
    return forms.Form(name="usage-report", source=source, required=("title", "rows", "totals"))


def render_pdf(data: UsageReportCreate | dict[str, Any]) -> bytes:
    """The report's PDF; `data` is checked against `UsageReportCreate` (400 naming the
    field when it does not fit)."""
    report = data if isinstance(data, UsageReportCreate) else _checked(data)
    return forms.render(usage_form(), report.model_dump())


def _checked(data: dict[str, Any]) -> UsageReportCreate:
    try:
        return UsageReportCreate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"the report's {where}: {first['msg']}", field=where) from exc
