"""A tenant's own forms (issue 3) over a real stack: uploaded through docgen's API,
checked by compiling, used by the batch flow when `parameters.form` names one, and
never seen by another tenant."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import httpx
from PIL import Image

from tests.helpers.docgen import (
    MINE,
    Docgen,
    admin,
    blobs,
    docgen_runtime,
    setup_org,
)
from tests.helpers.docgen_admin import AdminBrowser, org, text_of


def test_a_tenant_form_is_checked_used_and_kept_to_its_tenant(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        org = setup_org(stack, rt)
        other = setup_org(stack, rt)
        with admin(org) as api:
            # a form that fails to compile: 400 with the compiler's message
            broken = api.post(
                "/api/forms", json={"name": "broken", "kind": "invoice", "source": "#let x = \n"}
            )
            assert broken.status_code == 400, broken.text
            assert "expected expression" in broken.text, broken.text
            # a built-in name may not be shadowed
            shadow = api.post(
                "/api/forms", json={"name": "invoice", "kind": "invoice", "source": MINE}
            )
            assert shadow.status_code == 400 and "built-in" in shadow.text, shadow.text
            # a good one, sent as multipart
            kept = api.post(
                "/api/forms",
                data={"name": "ours", "kind": "invoice"},
                files={"source": ("ours.typ", MINE.encode(), "text/plain")},
            )
            assert kept.status_code == 201, kept.text
            listed = api.get("/api/forms").json()
            assert [f["name"] for f in listed["forms"]] == ["ours"]
            assert listed["builtin"] == ["invoice", "statement"]

        # used by a batch
        request_id = org.batch(form="ours")
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        assert any("form ours" in step["detail"] for step in done["steps"]), done
        assert all(p.read_bytes().startswith(b"%PDF") for p in blobs(stack, request_id))

        # another tenant neither sees nor uses it
        with admin(other) as api:
            assert api.get("/api/forms").json()["forms"] == []
            assert api.delete("/api/forms/ours").status_code == 404
        request_id = other.batch(form="ours")
        done = other.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "unknown form 'ours'" in (done["reason"] or ""), done

        # removed: a batch naming it is suspended
        with admin(org) as api:
            assert api.delete("/api/forms/ours").status_code == 204
            assert api.get("/api/forms").json()["forms"] == []
        request_id = org.batch(form="ours")
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
    finally:
        rt.http.close()


#: A form whose 4th line does not compile (Typst: "unknown variable: totl").
BROKEN = """#let d = json(bytes(sys.inputs.data))
= Statement in #d.currency <b>

Total: #totl & more
"""


def in_editor(page: httpx.Response) -> str:
    found = re.search(r'<textarea id="form-source"[^>]*>\n(.*?)</textarea>', page.text, re.S)
    assert found, page.text
    return html.unescape(found.group(1))


def test_the_forms_page_edits_compiles_and_deletes_forms(docgen: Docgen) -> None:
    a, b = org(docgen.stack), org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials}) as browser:
        page = browser.open("/forms")
        assert page.status_code == 200, page.text
        assert "None yet" in text_of(page, "no-forms")
        assert 'rows="30"' in page.text and 'class="code"' in page.text

        # A compile error: 400, the text as typed, the error beside the editor, line 4 marked.
        refused = browser.submit(page, "/forms", name="ours", kind="statement", source=BROKEN)
        assert refused.status_code == 400, refused.text
        assert in_editor(refused) == BROKEN  # kept as typed
        assert 'value="ours"' in refused.text
        assert '<option value="statement" selected>' in refused.text
        problem = re.search(r'id="form-source-error"[^>]*>(.*?)</div>', refused.text, re.S)
        assert problem, refused.text
        said = html.unescape(re.sub(r"<[^>]+>", " ", problem.group(1)))
        assert "not saved" in said and "line 4, column" in said, said
        assert "Unknown variable: totl" in said, said
        marked = '<li id="line-4" class="failing"><mark>Total: #totl &amp; more</mark>'
        assert marked in refused.text
        assert '<ol class="source" start="1">' in refused.text
        assert 'href="#line-4" data-line="4"' in refused.text
        assert 'aria-invalid="true" aria-describedby="form-source-error"' in refused.text

        # A name that will not do: said beside the name, the source kept.
        named = browser.submit(refused, "/forms", name="Our Form", kind="invoice", source=MINE)
        assert named.status_code == 400
        assert "lowercase letters" in text_of(named, "form-name-error")
        assert in_editor(named) == MINE
        shadow = browser.submit(named, "/forms", name="invoice", kind="invoice", source=MINE)
        assert shadow.status_code == 400 and "built-in" in text_of(shadow, "form-name-error")

        # Saved: post/redirect/get to the form, with its first page as a picture.
        saved = browser.submit(shadow, "/forms", name="ours", kind="invoice", source=MINE)
        assert saved.status_code == 200, saved.text
        assert browser.trail[-1] == "/docgen/forms/ours", browser.trail
        assert text_of(saved, "notice").startswith("Saved.")
        assert in_editor(saved) == MINE  # the editor holds the form
        picture = browser.http.get(f"{docgen.base_url}/forms/ours/preview.png")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(picture.content)) as image:
            assert max(image.size) <= 900 and image.size[1] > image.size[0]  # an A4 page
        settings = browser.open("/settings")
        assert '<a href="/docgen/forms/ours">ours</a>' in settings.text

        # Another organisation neither sees the form nor its picture.
        with AdminBrowser(docgen, {"idp-a": b.credentials}) as other:
            assert other.open("/forms/ours").status_code == 404
            theirs = other.http.get(f"{docgen.base_url}/forms/ours/preview.png")
            assert theirs.status_code == 404

        gone = browser.submit(saved, "/forms/ours/delete")
        assert gone.status_code == 200 and browser.trail[-1] == "/docgen/forms"
        assert "ours" in text_of(gone, "notice") and "None yet" in text_of(gone, "no-forms")
        picture = browser.http.get(f"{docgen.base_url}/forms/ours/preview.png")
        assert picture.status_code == 404


def test_a_bad_overlap_is_said_beside_its_field(docgen: Docgen) -> None:
    a = org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials}) as browser:
        page = browser.open("/settings")
        page = browser.submit(page, "/settings/secret-key")
        page = browser.open("/settings")
        assert text_of(page, "secret-key-state").startswith("Issued")
        assert "by boss" in text_of(page, "secret-key-state")  # a person, not "user:boss"
        said = html.unescape(page.text)  # the issuers by what they are, not "idp-a"
        assert "You will be sent to printcloud's sign-in page and back." in said
        assert "You will be sent to the CRM's sign-in page and back." in said
        refused = browser.submit(page, "/settings/secret-key/rotate", overlap_hours="5")
        assert refused.status_code == 400
        assert "from the list" in text_of(refused, "overlap_hours-error")
        assert 'id="error"' not in refused.text
