"""S1519 on every core (issue 17): a batch request's documents rendered by the process's
shared render threads, in order, a failing document failing only its own request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from printcloud.core.blobs import FileBlobStore
from printcloud.docgen import forms
from printcloud.docgen.batch.rendering import DocumentFailed, render_documents
from printcloud.docgen.sandbox import FormProcessPool
from tests.docgen.test_forms import pdf_text


@pytest.fixture(scope="module")
def threads() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-render")
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def children() -> Iterator[FormProcessPool]:
    pool = FormProcessPool(size=1)  # never started: only built-in forms render here
    yield pool
    pool.close()


def invoices(count: int, first_seed: int) -> list[dict[str, Any]]:
    return [forms.sample_invoice(lines=3, seed=first_seed + n) for n in range(count)]


def test_documents_come_back_in_order_each_its_own(
    tmp_path: Path, threads: ThreadPoolExecutor, children: FormProcessPool
) -> None:
    blobs = FileBlobStore(tmp_path)
    documents = invoices(6, 100)
    keys = render_documents(
        blobs=blobs,
        form=forms.builtin_form("invoice"),
        documents=documents,
        key_of=lambda n: f"docgen/r1/doc-{n:04d}.pdf",
        form_processes=children,
        threads=threads,
    )
    assert keys == [f"docgen/r1/doc-{n:04d}.pdf" for n in range(1, 7)]
    for key, data in zip(keys, documents, strict=True):
        text = pdf_text(blobs.path(key).read_bytes())
        assert data["invoice"]["number"] in text
        assert data["customer"]["name"] in text


def test_a_failing_document_fails_only_its_own_request(
    tmp_path: Path, threads: ThreadPoolExecutor, children: FormProcessPool
) -> None:
    """Two requests share the threads at once; the one with a bad document 3 of 5 gets
    that document and its reason, keeps no blob, and the other request renders whole."""
    blobs = FileBlobStore(tmp_path)
    bad = invoices(5, 200)
    bad[2]["lines"][1]["quantity"] = "three"
    bad[4]["lines"][0]["unit_price"] = "free"  # a later failure: the first one is named
    good = invoices(5, 300)
    outcome: dict[str, Any] = {}

    def run(name: str, documents: list[dict[str, Any]]) -> None:
        try:
            outcome[name] = render_documents(
                blobs=blobs,
                form=forms.builtin_form("invoice"),
                documents=documents,
                key_of=lambda n: f"docgen/{name}/doc-{n:04d}.pdf",
                form_processes=children,
                threads=threads,
            )
        except DocumentFailed as exc:
            outcome[name] = exc

    runners = [
        threading.Thread(target=run, args=("bad", bad)),
        threading.Thread(target=run, args=("good", good)),
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)
        assert not runner.is_alive(), "rendering is stuck"

    failed = outcome["bad"]
    assert isinstance(failed, DocumentFailed)
    assert (failed.number, failed.total) == (3, 5)
    assert "quantity" in str(failed.error)
    assert not (tmp_path / "docgen" / "bad").exists() or not any(
        (tmp_path / "docgen" / "bad").iterdir()
    )
    assert outcome["good"] == [f"docgen/good/doc-{n:04d}.pdf" for n in range(1, 6)]
    for key in outcome["good"]:
        assert blobs.path(key).read_bytes().startswith(b"%PDF-")
