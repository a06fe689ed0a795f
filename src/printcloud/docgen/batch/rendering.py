"""S1519 on every core: a batch request's documents rendered by threads the process
shares, kept as blobs, their keys in the documents' order.

The Typst compiler releases the GIL, so threads render on every core (a tenant's
form compiles in the sandbox's children, one per core, driven by the same threads).
One pool per process, not one per request: ten tenants' batches firing at the same
second share the cores instead of oversubscribing them, and as the pool is first in,
first out, the first request's documents are done first and its upload starts while
the others still render.

A document that does not fit the form fails alone: the documents after it that have
not started are cancelled, those already rendered are removed, and the caller gets
the first failing document in order (`DocumentFailed`), exactly as rendering them
one after the other would have found it. Other requests' documents are untouched.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from printcloud.core.blobs import FileBlobStore
from printcloud.core.errors import InvalidRequest

from .. import forms
from ..sandbox import FormProcessPool


class DocumentFailed(Exception):
    """Document `number` (1-based) of `total` did not render; `error` says why."""

    def __init__(self, number: int, total: int, error: InvalidRequest) -> None:
        super().__init__(f"document {number} of {total}: {error}")
        self.number = number
        self.total = total
        self.error = error


_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None


def render_threads() -> ThreadPoolExecutor:
    """The process's render threads, one per CPU (made on first use)."""
    global _threads  # noqa: PLW0603 - one pool per process, made on first use
    with _lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="docgen-render"
            )
        return _threads


def render_documents(
    *,
    blobs: FileBlobStore,
    form: forms.Form,
    documents: Sequence[Mapping[str, Any]],
    key_of: Callable[[int], str],
    form_processes: FormProcessPool,
    threads: ThreadPoolExecutor | None = None,
) -> list[str]:
    """Every document rendered with `form` and stored at `key_of(number)` (1-based);
    the keys in order. A built-in form renders in process, a tenant's form in one of
    `form_processes`' children. Raises `DocumentFailed` for the first document, in
    order, that does not fit the form (a `FormError` or `FormLimitExceeded` among
    them), having removed the blobs of the others."""
    pool = threads or render_threads()

    def one(number: int, data: Mapping[str, Any]) -> str:
        if form.tenant_id is None:  # a built-in form: our code, in process
            pdf = forms.render(form, data)
        else:  # the tenant's code: in a child process, under the form limits
            pdf = forms.render_tenant_form(form_processes, form, data)
        key = key_of(number)
        blobs.put(key, pdf)
        return key

    futures: list[Future[str]] = [
        pool.submit(one, n, data) for n, data in enumerate(documents, start=1)
    ]
    keys: list[str] = []
    try:
        for n, future in enumerate(futures, start=1):
            try:
                keys.append(future.result())
            except InvalidRequest as exc:
                raise DocumentFailed(n, len(documents), exc) from exc
    except BaseException:
        for future in futures:
            future.cancel()
        for future in futures:  # the ones already running finish: remove theirs too
            if not future.cancelled() and future.exception() is None:
                blobs.path(future.result()).unlink(missing_ok=True)
        raise
    return keys
