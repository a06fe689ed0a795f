"""An uploaded form, checked by a trial compile in a sandboxed child process (`validate_form`;
`trial_form` also gives the PDF of that compile, for a preview)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from printcloud.core.errors import InvalidRequest

from ..sandbox import FormLimitExceeded, FormProcessPool, Limits
from .builtin import REQUIRED, builtin_form
from .compiler import child_error, clean, embedded_fonts, form_error
from .model import BUILTIN_FORMS, MAX_TEMPLATE_BYTES, Form, FormError

log = logging.getLogger(__name__)


VALIDATE_TIMEOUT = 10.0
VALIDATE_MEMORY = 2 * 1024**3


# -- uploaded forms --------------------------------------------------------------


#: The preview of an uploaded form's first page: at most this many pixels wide or high.
PREVIEW_PIXELS = 900


@dataclass(frozen=True)
class Trial:
    """A form that compiled, the PDF it made with the sample data, and its first page as
    a PNG (`PREVIEW_PIXELS` at most; None when it could not be made)."""

    form: Form
    pdf: bytes
    preview: bytes | None


def validate_form(
    source: str,
    *,
    sample: Mapping[str, Any] | None = None,
    name: str = "custom",
    kind: str | None = None,
    required: tuple[str, ...] | None = None,
    tenant_id: str | None = None,
    timeout: float = VALIDATE_TIMEOUT,
) -> Form:
    """`trial_form`'s form (the PDF of the trial is dropped)."""
    return trial_form(
        source,
        sample=sample,
        name=name,
        kind=kind,
        required=required,
        tenant_id=tenant_id,
        timeout=timeout,
    ).form


def trial_form(
    source: str,
    *,
    sample: Mapping[str, Any] | None = None,
    name: str = "custom",
    kind: str | None = None,
    required: tuple[str, ...] | None = None,
    tenant_id: str | None = None,
    timeout: float = VALIDATE_TIMEOUT,
) -> Trial:
    """Check an uploaded template by compiling it with `sample` data; the `Form` and the
    PDF if it works.

    `kind` ("invoice" or "statement") makes the form take that built-in form's
    data (checked and completed as for it; its sample is used when `sample` is
    None). Raises `FormError` (an `InvalidRequest`) carrying the compiler's
    message and location, and `InvalidRequest` for a template that is too
    large, imports a package, asks for a font Typst does not embed, or takes
    longer than `timeout` seconds.
    """
    if not isinstance(source, str):
        raise InvalidRequest("the form's source must be text", field="source")
    size = len(source.encode("utf-8", "replace"))
    if size > MAX_TEMPLATE_BYTES:
        raise InvalidRequest(
            f"the form is {size} bytes; at most {MAX_TEMPLATE_BYTES} are accepted", field="source"
        )
    if kind is not None and kind not in BUILTIN_FORMS:
        raise InvalidRequest(f"kind must be one of {', '.join(BUILTIN_FORMS)}", field="kind")
    if "\x00" in source:
        raise InvalidRequest("the form's source holds a NUL character", field="source")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("the form's source is not valid Unicode", field="source") from None
    if sample is None:
        sample = builtin_form(kind).sample if kind else {}
    form = Form(
        name=name,
        source=source,
        kind=kind,
        required=required if required is not None else (REQUIRED[kind] if kind else ()),
        sample=dict(sample),
        tenant_id=tenant_id,
    )
    try:
        text = form.prepare(sample)
    except InvalidRequest as exc:
        raise InvalidRequest(f"sample data: {exc.description}", field="sample") from exc
    result, pdf = _trial_compile(source, text, timeout=timeout)
    if not result.get("ok"):
        raise child_error(result, prefix="the form does not compile")
    warnings = [(str(w["message"]), str(w["diagnostic"])) for w in result.get("warnings", [])]
    for message, diagnostic in warnings:
        if message.startswith("unknown font family"):
            raise form_error(
                message,
                diagnostic,
                [f"available fonts: {', '.join(sorted(set(embedded_fonts().families())))}"],
                str(result.get("root", "")),
                prefix="the form asks for a font printcloud does not have",
            )
    checked = Form(
        name=form.name,
        source=form.source,
        kind=form.kind,
        required=form.required,
        sample=form.sample,
        tenant_id=tenant_id,
        warnings=tuple(clean(message) for message, _ in warnings),
    )
    picture = result.get("preview")
    return Trial(checked, pdf or b"", base64.b64decode(picture) if picture else None)


def _trial_compile(
    source: str, data: str, *, timeout: float
) -> tuple[dict[str, Any], bytes | None]:
    """Compile once in a sandboxed child (`sandbox.py`) with the upload's limits."""
    cpu = max(1, int(timeout) + 1)
    pool = FormProcessPool(
        Limits(cpu_seconds=cpu, memory_mb=VALIDATE_MEMORY // 1024**2, wall_seconds=timeout), size=1
    )
    try:
        result, pdf = pool.compile(key="trial", source=source, data=data, preview=PREVIEW_PIXELS)
    except FormLimitExceeded as exc:
        log.info("trial compile of a form failed: %s", exc.description)
        if exc.limit in ("cpu", "time"):
            raise InvalidRequest(
                f"the form took longer than {timeout:g} s to compile with the sample data",
                field="source",
            ) from None
        raise InvalidRequest(
            f"the form could not be compiled with the sample data: {exc.description}",
            field="source",
        ) from None
    finally:
        pool.close()
    if result.get("fetched"):
        raise FormError(
            "forms cannot import packages; put what you need in the form",
            message="forms cannot import packages",
        )
    return result, pdf
