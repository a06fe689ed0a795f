"""Rendering to PDF: built-in forms on pooled in-process compilers (`FormRenderer`),
a tenant's form in a sandboxed child process (`render_tenant_form`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import typst

from ..sandbox import FormProcessPool
from .builtin import builtin_form
from .compiler import child_error, form_error, get_sandbox, new_compiler
from .model import Form, FormError

log = logging.getLogger(__name__)


# -- rendering -----------------------------------------------------------------


class _Pool:
    """Idle compilers of one form; at most `size` exist, borrowers wait for one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[typst.Compiler] = []
        self.created = 0
        self.cond = threading.Condition()

    @contextmanager
    def compiler(self) -> Iterator[typst.Compiler]:
        with self.cond:
            while not self.idle and self.created >= self.size:
                self.cond.wait()
            if self.idle:
                compiler = self.idle.pop()
            else:
                self.created += 1
                compiler = None
        if compiler is None:
            try:
                compiler = new_compiler()
            except BaseException:
                with self.cond:
                    self.created -= 1
                    self.cond.notify()
                raise
        try:
            yield compiler
        finally:
            with self.cond:
                self.idle.append(compiler)
                self.cond.notify()


class FormRenderer:
    """Renders forms to PDF, reusing compilers: thread-safe, one small pool per form.

    `compilers_per_form` bounds the documents of one form rendered at once (the
    compiler releases the GIL, so threads use several cores); `max_forms` bounds
    how many forms keep their compilers (least recently used go first).
    """

    def __init__(self, *, compilers_per_form: int | None = None, max_forms: int = 64) -> None:
        self.compilers_per_form = max(1, compilers_per_form or os.cpu_count() or 1)
        self.max_forms = max(1, max_forms)
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    def _pool(self, form: Form) -> _Pool:
        with self._lock:
            pool = self._pools.get(form.digest)
            if pool is None:
                pool = self._pools[form.digest] = _Pool(self.compilers_per_form)
                while len(self._pools) > self.max_forms:
                    self._pools.popitem(last=False)
            else:
                self._pools.move_to_end(form.digest)
            return pool

    def render(self, form: str | Form, data: Mapping[str, Any]) -> bytes:
        """The PDF of `form` (a built-in form's name, or a `Form`) filled with `data`.

        Raises `InvalidRequest` naming the field when the data does not fit the
        form, and `FormError` (an `InvalidRequest`) when the template fails on it.
        """
        if isinstance(form, str):
            form = builtin_form(form)
        if form.tenant_id is not None:  # a tenant's code never runs in this process
            raise ValueError("a tenant's form renders with render_tenant_form, in a child process")
        text = form.prepare(data)
        source = form.source.encode("utf-8")
        with self._pool(form).compiler() as compiler:
            try:
                pdf, warnings = compiler.compile_with_warnings(
                    input=source, format="pdf", sys_inputs={"data": text}
                )
            except typst.TypstError as exc:
                raise form_error(
                    exc.message,
                    exc.diagnostic,
                    list(exc.hints),
                    str(get_sandbox().root),
                    prefix=f"form {form.name!r} failed on this data",
                ) from None
        for warning in warnings:
            key = (form.digest, warning.message)
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "form %r (tenant %s): %s", form.name, form.tenant_id or "-", warning.message
                )
        assert isinstance(pdf, bytes)
        return pdf


_default_renderer: FormRenderer | None = None
_default_lock = threading.Lock()


def render(form: Form | str, data: Mapping[str, Any]) -> bytes:
    """`FormRenderer.render` on a renderer shared by the process."""
    global _default_renderer  # noqa: PLW0603 - created on first use, then shared
    with _default_lock:
        if _default_renderer is None:
            _default_renderer = FormRenderer()
        renderer = _default_renderer
    return renderer.render(form, data)


def render_tenant_form(pool: FormProcessPool, form: Form, data: Mapping[str, Any]) -> bytes:
    """The PDF of a tenant's `form` with `data`, compiled in one of `pool`'s children.

    Raises `InvalidRequest` naming the field when the data does not fit the
    form, `FormError` when the template fails on it (a package import among
    them, named), and `FormLimitExceeded` when the document broke the CPU,
    memory or time limit (the description names it)."""
    text = form.prepare(data)
    result, pdf = pool.compile(key=form.digest, source=form.source, data=text)
    if result.get("fetched"):
        raise FormError(
            f"form {form.name!r} put a package in place; forms cannot import packages",
            message="forms cannot import packages",
        )
    if not result.get("ok"):
        raise child_error(result, prefix=f"form {form.name!r} failed on this data")
    for warning in result.get("warnings", []):
        log.info("form %r (tenant %s): %s", form.name, form.tenant_id, warning.get("message"))
    assert pdf is not None
    return pdf
