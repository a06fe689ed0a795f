"""The conversion's render/encode pipeline (issue 17, "The kernels"): page N + 1 renders
while one encoder thread encodes and stores page N. Order, failures and the thread."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
import simplejpeg

from printcloud.core.blobs import FileBlobStore
from printcloud.core.errors import InvalidRequest
from printcloud.printing.convert import ENCODER_THREAD, Manifest, convert_pdf
from printcloud.printing.convert_child import ConversionLimits, Converter
from tests.printing.test_convert import BASE_URL, make_pdf

#: At 600 dpi a 7,900 pt wide page is 65,834 px: PDFium renders it (5.5 MP, under the
#: page limit), libjpeg-turbo refuses it (at most 65,500 px a side) — in the encoder.
TOO_WIDE = (7900, 10)


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def encoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(ENCODER_THREAD)]


def convert(data: bytes, store: FileBlobStore, **kwargs: object) -> Manifest:
    options: dict[str, object] = {"dpi": 72, "color": True, "prefix": "t1/job-1"}
    options.update(kwargs)
    return convert_pdf(data, store=store, base_url=BASE_URL, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("color", [True, False])
def test_pages_are_stored_and_reported_in_order_by_the_encoder(
    color: bool, store: FileBlobStore
) -> None:
    sizes = [(200, 300), (300, 200), (144, 144), (100, 400), (250, 250)]
    seen: list[tuple[int, int, str, str]] = []

    def on_page(done: int, total: int) -> None:
        # Called once the page is stored: it is readable, its digest is final.
        jpeg = store.get(f"t1/job-1/page-{done:04d}.jpg")
        seen.append(
            (done, total, threading.current_thread().name, hashlib.sha256(jpeg).hexdigest())
        )

    manifest = convert(make_pdf(sizes), store, color=color, on_page=on_page)

    assert [(done, total) for done, total, _, _ in seen] == [(n, 5) for n in range(1, 6)]
    assert all(name.startswith(ENCODER_THREAD) for _, _, name, _ in seen)
    assert [page.sha256 for page in manifest.pages] == [digest for *_, digest in seen]
    assert [page.number for page in manifest.pages] == [1, 2, 3, 4, 5]
    assert encoder_threads() == []


@pytest.mark.parametrize("color", [True, False])
def test_the_pipeline_writes_what_one_page_at_a_time_writes(
    color: bool, store: FileBlobStore
) -> None:
    """The same JPEG bytes as rendering and encoding each page in turn, in one thread."""
    sizes = [(200, 300), (300, 200), (144, 144), (100, 400)]
    data = make_pdf(sizes)
    manifest = convert(data, store, dpi=150, color=color, quality=80)
    doc = pdfium.PdfDocument(data)
    try:
        doc.init_forms()
        for entry in manifest.pages:
            page = doc[entry.number - 1]
            bitmap = page.render(scale=150 / 72, grayscale=not color, optimize_mode="print")
            pixels = np.ascontiguousarray(bitmap.to_numpy())
            if color:
                jpeg = simplejpeg.encode_jpeg(
                    pixels, quality=80, colorspace="BGR", colorsubsampling="420"
                )
            else:
                jpeg = simplejpeg.encode_jpeg(
                    pixels.reshape(*pixels.shape[:2], 1), quality=80, colorspace="GRAY"
                )
            bitmap.close()
            page.close()
            assert store.get(f"t1/job-1/page-{entry.number:04d}.jpg") == bytes(jpeg)
            assert entry.sha256 == hashlib.sha256(jpeg).hexdigest()
    finally:
        doc.close()


@pytest.mark.parametrize("color", [True, False])
def test_a_page_the_encoder_refuses_fails_the_job_by_name(
    color: bool, store: FileBlobStore
) -> None:
    data = make_pdf([(200, 300), TOO_WIDE, (144, 144)])
    progress: list[int] = []
    with pytest.raises(InvalidRequest, match=r"^page 2 could not be encoded as JPEG: .*65500"):
        convert(data, store, dpi=600, color=color, on_page=lambda done, _: progress.append(done))
    assert progress == [1]
    assert list(store.keys()) == []
    assert encoder_threads() == []


def test_a_page_failing_to_render_while_the_encoder_works_leaves_nothing(
    store: FileBlobStore,
) -> None:
    # Page 3 is over the pixel limit: it fails in this thread while page 2 is encoded.
    data = make_pdf([(200, 300), (300, 200), (600, 600)])
    with pytest.raises(InvalidRequest, match=r"^page 3 is 600x600 pt"):
        convert(data, store, max_page_pixels=100_000)
    assert list(store.keys()) == []
    assert encoder_threads() == []


def test_the_encoders_failure_wins_over_the_next_pages(store: FileBlobStore) -> None:
    """Page 2 fails in the encoder and page 3 fails to render: the job fails on page 2."""
    data = make_pdf([(200, 300), TOO_WIDE, (1000, 1000)])
    with pytest.raises(InvalidRequest, match=r"^page 2 could not be encoded") as caught:
        convert(data, store, dpi=600, max_page_pixels=10_000_000)
    assert isinstance(caught.value.__context__, InvalidRequest)
    assert str(caught.value.__context__).startswith("page 3 is 1000x1000 pt")
    assert list(store.keys()) == []
    assert encoder_threads() == []


def test_a_progress_callback_that_raises_stops_the_pipeline(store: FileBlobStore) -> None:
    calls: list[int] = []

    def stop_at_one(done: int, total: int) -> None:
        calls.append(done)
        raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        convert(make_pdf(), store, on_page=stop_at_one)
    assert calls == [1]  # no page after the failing one is handed to the encoder
    assert list(store.keys()) == []
    assert encoder_threads() == []


def test_the_converter_child_names_the_page_and_goes_on(tmp_path: Path) -> None:
    """Through the worker's child process: the encoder's failure is the job's reason,
    and the same child converts the next job."""
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    store.put("t1/bad.pdf", make_pdf([(200, 300), TOO_WIDE]))
    store.put("t1/good.pdf", make_pdf())
    converter = Converter(ConversionLimits(), blob_root=root)
    try:
        with pytest.raises(InvalidRequest, match=r"^page 2 could not be encoded as JPEG"):
            converter.convert(
                data_key="t1/bad.pdf",
                dpi=600,
                color=True,
                quality=85,
                prefix="t1/bad",
                base_url=BASE_URL,
            )
        pid = converter.pid
        assert pid is not None
        assert list(store.keys("t1/bad")) == []
        manifest = converter.convert(
            data_key="t1/good.pdf",
            dpi=72,
            color=False,
            quality=85,
            prefix="t1/good",
            base_url=BASE_URL,
        )
        assert manifest.page_count == 3
        assert converter.pid == pid
    finally:
        converter.close()
