"""The picture of a tenant form's first page (issue 16, item 9): made by Typst in the
sandboxed trial compile, at most `PREVIEW_PIXELS` wide or high whatever the page size."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from printcloud.docgen import forms
from printcloud.docgen.forms.validation import PREVIEW_PIXELS
from tests.helpers.docgen import MINE


@pytest.mark.parametrize(
    ("page", "wider"),
    [('#set page(paper: "a4")', False), ("#set page(width: 500cm, height: 20cm)", True)],
)
def test_the_first_page_as_a_picture_of_bounded_size(page: str, wider: bool) -> None:
    assert '#set page(paper: "a4")' in MINE
    source = MINE.replace('#set page(paper: "a4")', page) + "\n#pagebreak()\nPage two"
    trial = forms.trial_form(source, name="ours", kind="invoice", tenant_id="t1")
    assert trial.pdf.startswith(b"%PDF") and trial.preview is not None
    with Image.open(io.BytesIO(trial.preview)) as picture:
        width, height = picture.size
    assert max(width, height) <= PREVIEW_PIXELS
    assert (width > height) is wider
    if not wider:  # an A4 page is drawn at 72 ppi: 595 x 842 pixels
        assert (width, height) == (595, 842)
