"""What a form is (`Form`), the error a failing form raises (`FormError`), and size limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from printcloud.core.errors import InvalidRequest

from .data import PREPARE, json_default

BUILTIN_FORMS = ("invoice", "statement")

MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DATA_BYTES = 16 * 1024 * 1024


class FormError(InvalidRequest):
    """A form that does not compile; the description is the compiler's message.

    `line` and `column` point into the template when Typst gives a location.
    """

    def __init__(
        self,
        description: str,
        *,
        message: str = "",
        line: int | None = None,
        column: int | None = None,
        field: str | None = "source",
    ) -> None:
        super().__init__(description, field=field)
        self.message = message or description
        self.line = line
        self.column = column


@dataclass(frozen=True, eq=False)
class Form:
    """A template and what it expects.

    `kind` ("invoice", "statement" or None) says whether `render` checks and
    completes the data as described in this module's docstring before the
    template sees it; with None the data goes to the template as given.
    """

    name: str
    source: str
    kind: str | None = None
    required: tuple[str, ...] = ()
    sample: Mapping[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    warnings: tuple[str, ...] = ()

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def schema(self) -> dict[str, Any]:
        """A JSON Schema of the top level of the data (the keys it requires)."""
        return {"type": "object", "required": list(self.required)}

    def prepare(self, data: Mapping[str, Any]) -> str:
        """Check `data` and turn it into the JSON string the template reads."""
        if not isinstance(data, Mapping):
            raise InvalidRequest("the form's data must be a JSON object", field="data")
        missing = [key for key in self.required if key not in data]
        if missing:
            raise InvalidRequest(
                f"form {self.name!r} needs {', '.join(missing)} in its data", field=missing[0]
            )
        prepared = PREPARE[self.kind](data) if self.kind else dict(data)
        try:
            text = json.dumps(prepared, ensure_ascii=False, allow_nan=False, default=json_default)
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate: Typst takes only real text
            raise InvalidRequest(
                "the form's data holds text that is not valid Unicode", field="data"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"the form's data is not JSON: {exc}", field="data") from exc
        if size > MAX_DATA_BYTES:
            raise InvalidRequest(
                f"the form's data is {size} bytes; at most {MAX_DATA_BYTES} are accepted",
                field="data",
            )
        return text
