"""PDF → JPEG pages + manifest (seed 003, FIG. 8, S1308): `printcloud.printing.convert`."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import subprocess
import threading
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from printcloud.core.blobs import FileBlobStore
from printcloud.core.errors import InvalidRequest
from printcloud.printing.convert import (
    MAX_DPI,
    MIN_DPI,
    Manifest,
    PageSize,
    convert_pdf,
    inspect_pdf,
    manifest_key,
)
from tests.conftest import require_command, require_peer

BASE_URL = "http://127.0.0.1:8000/printing/converted/job-1"

# (width, height) in points; Pillow writes an image at 72 dpi as a page of its pixel size.
SIZES = [(200, 300), (300, 200), (144, 144)]


def make_pdf(sizes: list[tuple[int, int]] = SIZES) -> bytes:
    colors = [(220, 30, 30), (30, 30, 220), (30, 160, 30)]
    images = [Image.new("RGB", size, colors[i % 3]) for i, size in enumerate(sizes)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def convert(data: bytes, store: FileBlobStore, **kwargs: object) -> Manifest:
    options: dict[str, object] = {"dpi": 72, "color": True, "prefix": "t1/job-1"}
    options.update(kwargs)
    return convert_pdf(data, store=store, base_url=BASE_URL, **options)  # type: ignore[arg-type]


# -- inspect ---------------------------------------------------------------------


def test_inspect_counts_pages_and_sizes() -> None:
    info = inspect_pdf(make_pdf())
    assert info.page_count == 3
    assert info.page_sizes == tuple(PageSize(float(w), float(h)) for w, h in SIZES)


def test_inspect_rotated_page_reports_the_size_as_printed() -> None:
    doc = pdfium.PdfDocument(make_pdf([(200, 300)]))
    doc[0].set_rotation(90)
    out = io.BytesIO()
    doc.save(out)
    doc.close()
    assert inspect_pdf(out.getvalue()).page_sizes == (PageSize(300.0, 200.0),)


def test_inspect_refuses_more_pages_than_allowed() -> None:
    with pytest.raises(InvalidRequest, match="3 pages; at most 2"):
        inspect_pdf(make_pdf(), max_pages=2)


def _zero_page_pdf() -> bytes:
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[]/Count 0>>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 3\n0000000000 65535 f \n"
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size 3/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (_png(), "not a PDF"),
        (b"%PDF-1.4\n" + b"\0" * 64, "damaged or truncated"),
        (make_pdf()[:1500], "damaged or truncated"),
        (make_pdf()[:-60], "damaged or truncated"),
        (_zero_page_pdf(), "no pages"),
    ],
    ids=["empty", "png", "garbage-after-header", "truncated-half", "truncated-tail", "no-pages"],
)
def test_bad_input_is_refused_with_the_reason(
    data: bytes, message: str, store: FileBlobStore
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        inspect_pdf(data)
    assert caught.value.field == "file"
    with pytest.raises(InvalidRequest, match=message):
        convert(data, store)
    assert list(store.keys()) == []


@pytest.fixture(scope="module")
def encrypted_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    gs = require_command("gs")
    folder = tmp_path_factory.mktemp("encrypted")
    (folder / "in.pdf").write_bytes(make_pdf())
    subprocess.run(
        [
            *(gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite"),
            *("-sOwnerPassword=owner", "-sUserPassword=user", "-o", "out.pdf", "in.pdf"),
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return (folder / "out.pdf").read_bytes()


def test_password_protected_pdf_is_refused_by_name(
    encrypted_pdf: bytes, store: FileBlobStore
) -> None:
    assert pdfium.PdfDocument(encrypted_pdf, password="user").__len__() == 3  # really readable
    with pytest.raises(InvalidRequest, match="password-protected"):
        inspect_pdf(encrypted_pdf)
    with pytest.raises(InvalidRequest, match="password-protected"):
        convert(encrypted_pdf, store)


@pytest.mark.parametrize(
    ("option", "value"), [("dpi", MIN_DPI - 1), ("dpi", MAX_DPI + 1), ("quality", 0)]
)
def test_out_of_range_options_are_refused(option: str, value: int, store: FileBlobStore) -> None:
    with pytest.raises(InvalidRequest, match=option if option == "dpi" else "quality") as caught:
        convert(make_pdf(), store, **{option: value})
    assert caught.value.field == option
    assert list(store.keys()) == []


def test_page_too_large_for_the_pixel_budget_is_refused(store: FileBlobStore) -> None:
    with pytest.raises(InvalidRequest, match="more than 1000 pixels"):
        convert(make_pdf(), store, max_page_pixels=1000)
    assert list(store.keys()) == []


# -- convert ---------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [72, 100])
def test_color_conversion_writes_one_jpeg_per_page_and_the_manifest(
    dpi: int, store: FileBlobStore
) -> None:
    data = make_pdf()
    progress: list[tuple[int, int]] = []
    manifest = convert(
        data, store, dpi=dpi, on_page=lambda done, total: progress.append((done, total))
    )

    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert manifest.page_count == 3
    assert manifest.source_sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.source_size == len(data)
    assert (manifest.dpi, manifest.color_mode, manifest.quality) == (dpi, "color", 85)
    assert sorted(store.keys()) == [
        "t1/job-1/manifest.json",
        "t1/job-1/page-0001.jpg",
        "t1/job-1/page-0002.jpg",
        "t1/job-1/page-0003.jpg",
    ]
    for number, (page, (width_pt, height_pt)) in enumerate(
        zip(manifest.pages, SIZES, strict=True), 1
    ):
        assert page.number == number
        assert page.url == f"{BASE_URL}/page-{number:04d}.jpg"
        jpeg = store.get(f"t1/job-1/page-{number:04d}.jpg")
        assert (page.size, page.sha256) == (len(jpeg), hashlib.sha256(jpeg).hexdigest())
        expected = PageSize(width_pt, height_pt).pixels(dpi)
        assert (page.width, page.height) == expected
        with Image.open(io.BytesIO(jpeg)) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == expected
            # The page colour survives: red, blue, green (JPEG is lossy, hence the margins).
            red, green, blue = image.getpixel((image.width // 2, image.height // 2))  # type: ignore[misc]
        dominant = {1: red, 2: blue, 3: green}[number]
        assert dominant > 150 and dominant - min(red, green, blue) > 100


def test_manifest_json_round_trips(store: FileBlobStore) -> None:
    manifest = convert(make_pdf(), store)
    stored = store.get(manifest_key("t1/job-1"))
    assert Manifest.from_json(stored) == manifest
    assert Manifest.from_json(manifest.to_json()).to_json() == stored


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text.replace('"page_count": 3', '"page_count": 4'),
        lambda text: text.replace('"color_mode": "color"', '"color_mode": "sepia"', 1),
        lambda text: text[:-20],
    ],
    ids=["count-mismatch", "unknown-mode", "truncated"],
)
def test_a_bad_manifest_is_refused(mangle: object, store: FileBlobStore) -> None:
    text = convert(make_pdf(), store).to_json().decode()
    with pytest.raises(InvalidRequest) as caught:
        Manifest.from_json(mangle(text))  # type: ignore[operator]
    assert caught.value.field == "manifest"


def test_mono_conversion_writes_grayscale_jpegs(store: FileBlobStore) -> None:
    manifest = convert(make_pdf(), store, dpi=100, color=False, quality=70)
    assert (manifest.color_mode, manifest.quality) == ("mono", 70)
    for page in manifest.pages:
        assert page.color_mode == "mono"
        with Image.open(io.BytesIO(store.get(f"t1/job-1/page-{page.number:04d}.jpg"))) as image:
            assert image.mode == "L"
            assert image.size == (page.width, page.height)
            # Coloured pages become mid-grey, not white or black.
            assert 30 < image.getpixel((image.width // 2, image.height // 2)) < 200  # type: ignore[operator]


def test_failure_part_way_leaves_nothing_behind(store: FileBlobStore) -> None:
    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        convert(make_pdf(), store, on_page=stop_after_two)
    assert list(store.keys()) == []


def test_a_bad_prefix_is_refused_before_any_work(store: FileBlobStore) -> None:
    with pytest.raises(InvalidRequest, match="invalid blob key"):
        convert(make_pdf(), store, prefix="../escape")


def test_threads_convert_side_by_side(store: FileBlobStore) -> None:
    """PDFium is not thread-safe; the module lock makes concurrent calls correct."""
    data = make_pdf()
    results: dict[int, Manifest] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = convert(data, store, prefix=f"t1/job-{n}")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    digests = {tuple(page.sha256 for page in manifest.pages) for manifest in results.values()}
    assert len(results) == 4 and len(digests) == 1


# -- a PDF that no code here wrote -----------------------------------------------


def _installed_pdfs(limit: int = 4) -> list[Path]:
    """The smallest PDFs Debian packages installed under /usr/share/doc."""
    doc = Path("/usr/share/doc")
    found = [*doc.glob("**/*.pdf"), *doc.glob("**/*.pdf.gz")]
    small = [path for path in found if path.is_file() and path.stat().st_size < 2_000_000]
    return sorted(small, key=lambda path: path.stat().st_size)[:limit]


def _pdfinfo_pages(pdfinfo: str, path: Path) -> list[PageSize]:
    """Every page's size as poppler reports it, turned by the page's /Rotate."""
    text = subprocess.run(
        [pdfinfo, "-f", "1", "-l", "100000", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    sizes: dict[int, tuple[float, float]] = {}
    rotations: dict[int, int] = {}
    for line in text.splitlines():
        match = re.match(r"Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts", line)
        if match:
            sizes[int(match[1])] = (float(match[2]), float(match[3]))
        match = re.match(r"Page\s+(\d+) rot:\s+(\d+)", line)
        if match:
            rotations[int(match[1])] = int(match[2])
    count = re.search(r"^Pages:\s+(\d+)", text, re.MULTILINE)
    assert count is not None, text
    assert sorted(sizes) == list(range(1, int(count[1]) + 1))
    return [
        PageSize(height, width) if rotations.get(number, 0) % 180 else PageSize(width, height)
        for number, (width, height) in sorted(sizes.items())
    ]


def test_third_party_pdfs_match_pdfinfo_and_convert(tmp_path: Path, store: FileBlobStore) -> None:
    """PDFs no code here wrote: page count and sizes as poppler's pdfinfo reads them."""
    pdfinfo = require_command("pdfinfo")
    found = _installed_pdfs()
    require_peer(bool(found), "no PDF under /usr/share/doc (install e.g. ghostscript-doc)")
    documents = []
    for number, path in enumerate(found):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        local = tmp_path / f"doc{number}.pdf"
        local.write_bytes(data)
        expected = _pdfinfo_pages(pdfinfo, local)
        info = inspect_pdf(data)
        assert info.page_count == len(expected), path
        for mine, theirs in zip(info.page_sizes, expected, strict=True):
            assert mine.width == pytest.approx(theirs.width, abs=0.01), path
            assert mine.height == pytest.approx(theirs.height, abs=0.01), path
        documents.append((data, info))

    data, info = documents[0]
    manifest = convert(data, store, dpi=72, color=False)
    assert manifest.page_count == info.page_count
    assert len(list(store.keys("t1/job-1"))) == info.page_count + 1
    for page, size in zip(manifest.pages, info.page_sizes, strict=True):
        assert (page.width, page.height) == size.pixels(72)
