"""Typed HTTP client of the CRM's query API, for docgen (S1517–S1518) and the CLI.

Errors come back as `CrmError` with the CRM's wire code and reason, so the caller
can tell an expired or revoked token (`TokenRejected`: refresh and retry, S1601–S1605)
from anything else (suspend with the CRM's reason, S1606).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from printcloud.core.http import client as http_client
from printcloud.core.http import error_field, error_of


class CrmError(Exception):
    """The CRM refused a request, or could not be reached (`status` 0)."""

    def __init__(self, status: int, error: str, description: str, field: str | None = None):
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.field = field


class TokenRejected(CrmError):
    """401: the CRM token is expired, revoked or unknown."""


@dataclass(frozen=True)
class Record:
    id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Page:
    record_set: str
    fields: list[dict[str, Any]]
    records: list[Record]
    total: int
    next_offset: int | None

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [r.data for r in self.records]


def _filters(filters: Iterable[Mapping[str, Any] | tuple[str, str, Any]]) -> list[dict[str, Any]]:
    out = []
    for f in filters:
        if isinstance(f, tuple):
            name, op, value = f
            out.append({"field": name, "op": op, "value": value})
        else:
            out.append(dict(f))
    return out


class CrmClient:
    """Talks to one CRM (`base_url`, e.g. `http://host/crm`) with a caller's token."""

    def __init__(self, base_url: str, *, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or http_client(timeout=30)

    def close(self) -> None:
        self.http.close()

    def query(
        self,
        token: str,
        *,
        record_set: str,
        filters: Iterable[Mapping[str, Any] | tuple[str, str, Any]] = (),
        order: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> Page:
        """One page of `record_set`'s records passing every filter (`{"field", "op",
        "value"}` or `(field, op, value)`), in `order` ("-field" descending)."""
        body: dict[str, Any] = {
            "record_set": record_set,
            "filters": _filters(filters),
            "order": list(order),
            "offset": offset,
        }
        if limit is not None:
            body["limit"] = limit
        try:
            resp = self.http.post(
                f"{self.base_url}/api/query",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CrmError(0, "unreachable", f"the CRM at {self.base_url} is unreachable") from exc
        data = self._json(resp)
        try:
            return Page(
                record_set=str(data["record_set"]),
                fields=list(data["fields"]),
                records=[Record(id=str(r["id"]), data=dict(r["data"])) for r in data["records"]],
                total=int(data["total"]),
                next_offset=None if data.get("next_offset") is None else int(data["next_offset"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CrmError(
                resp.status_code, "bad_response", "the CRM answered malformed JSON"
            ) from exc

    def query_all(
        self,
        token: str,
        *,
        record_set: str,
        filters: Iterable[Mapping[str, Any] | tuple[str, str, Any]] = (),
        order: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching record's values (at most `limit`), page after page."""
        wanted = _filters(filters)
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            left = None if limit is None else limit - len(rows)
            page = self.query(
                token,
                record_set=record_set,
                filters=wanted,
                order=order,
                limit=left,
                offset=offset,
            )
            rows.extend(page.rows)
            if page.next_offset is None or (limit is not None and len(rows) >= limit):
                return rows
            offset = page.next_offset

    def _json(self, resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code < 400:
            try:
                data = resp.json()
            except ValueError:
                data = None
            if isinstance(data, dict):
                return data
        code, description = error_of(resp)
        kind = TokenRejected if resp.status_code == 401 else CrmError
        raise kind(
            resp.status_code,
            code or "error",
            description or f"HTTP {resp.status_code}",
            error_field(resp),
        )
