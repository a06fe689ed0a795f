"""Forms a tenant's administrator uploads (issue 3: "let tenants upload their own forms").

A tenant form is a Typst template of a kind — `invoice` or `statement` — so the
batch flow feeds it the same data as the built-in form of that kind. It is
checked by `forms.validate_form` (compiled with that kind's sample data) before
it is kept; one that fails is refused with the compiler's message. Names are the
tenant's own and may not shadow a built-in form.

Kept as one JSON blob per form, `docgen-forms/<tenant>/<name>.json`
({name, kind, source, uploaded_at, uploaded_by}): no table needed, and a
tenant's forms are the blobs under its own prefix only. The trial compile's
first page is kept beside it as a PNG, `docgen-form-previews/<tenant>/<name>.png`,
for the forms page (made in the sandboxed child, like the PDF).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from printcloud.core.blobs import FileBlobStore
from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest, NotFound

from . import forms

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PREFIX = "docgen-forms"
_PREVIEWS = "docgen-form-previews"


@dataclass(frozen=True)
class TenantForm:
    name: str
    kind: str
    source: str
    uploaded_at: str
    uploaded_by: str

    def form(self, tenant_id: str) -> forms.Form:
        base = forms.builtin_form(self.kind)
        return forms.Form(
            name=self.name,
            source=self.source,
            kind=self.kind,
            required=base.required,
            sample=base.sample,
            tenant_id=tenant_id,
        )


def _key(tenant_id: str, name: str) -> str:
    return f"{_PREFIX}/{tenant_id}/{name}.json"


def _preview_key(tenant_id: str, name: str) -> str:
    return f"{_PREVIEWS}/{tenant_id}/{name}.png"


def _check_name(name: str) -> None:
    if not name:
        raise InvalidRequest("Give the form a name.", field="name")
    if not NAME.match(name):
        raise InvalidRequest(
            "Use up to 64 lowercase letters (a–z), digits, '-' or '_' for the name, "
            "starting with a letter or a digit.",
            field="name",
        )
    if name in forms.BUILTIN_FORMS:
        raise InvalidRequest(
            f"“{name}” is the name of a built-in form; give your form another name.",
            field="name",
        )


def save_form(
    blobs: FileBlobStore, *, tenant_id: str, name: str, kind: str, source: str, actor: str
) -> TenantForm:
    """Validate (the compiler's message on failure: `forms.FormError`) and keep the form;
    a form of the same name is replaced."""
    _check_name(name)
    if kind not in forms.BUILTIN_FORMS:
        raise InvalidRequest(
            f"Choose the data the form is fed: {' or '.join(forms.BUILTIN_FORMS)}.", field="kind"
        )
    if not source.strip():
        raise InvalidRequest("Write the form's Typst source.", field="source")
    trial = forms.trial_form(source, name=name, kind=kind, tenant_id=tenant_id)
    kept = TenantForm(
        name=name,
        kind=kind,
        source=source,
        uploaded_at=utcnow().isoformat(),
        uploaded_by=actor,
    )
    blobs.put(_key(tenant_id, name), json.dumps(kept.__dict__, ensure_ascii=False).encode())
    if trial.preview is not None:
        blobs.put(_preview_key(tenant_id, name), trial.preview)
    elif blobs.exists(_preview_key(tenant_id, name)):
        blobs.delete(_preview_key(tenant_id, name))  # the old form's picture would mislead
    return kept


def get_form(blobs: FileBlobStore, *, tenant_id: str, name: str) -> TenantForm:
    if not NAME.match(name) or not blobs.exists(_key(tenant_id, name)):
        raise NotFound(f"no form {name!r} for this tenant", field="name")
    raw: dict[str, Any] = json.loads(blobs.get(_key(tenant_id, name)))
    return TenantForm(**raw)


def preview(blobs: FileBlobStore, *, tenant_id: str, name: str) -> bytes | None:
    """The PNG of the form's first page with the sample data, when one was made."""
    if not NAME.match(name) or not blobs.exists(_preview_key(tenant_id, name)):
        return None
    return blobs.get(_preview_key(tenant_id, name))


def has_preview(blobs: FileBlobStore, *, tenant_id: str, name: str) -> bool:
    return bool(NAME.match(name)) and blobs.exists(_preview_key(tenant_id, name))


def list_forms(blobs: FileBlobStore, *, tenant_id: str) -> list[TenantForm]:
    out = []
    for key in blobs.keys(f"{_PREFIX}/{tenant_id}"):
        raw: dict[str, Any] = json.loads(blobs.get(key))
        out.append(TenantForm(**raw))
    return sorted(out, key=lambda f: f.name)


def delete_form(blobs: FileBlobStore, *, tenant_id: str, name: str) -> None:
    get_form(blobs, tenant_id=tenant_id, name=name)  # NotFound for an unknown one
    blobs.delete(_key(tenant_id, name))
    if blobs.exists(_preview_key(tenant_id, name)):
        blobs.delete(_preview_key(tenant_id, name))
