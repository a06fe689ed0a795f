"""HTTP clients for service-to-service calls: one factory, sane timeouts.

Tests pass `transport=` (for example `httpx.ASGITransport`) to run a real app
in-process instead of mocking.
"""

from __future__ import annotations

from typing import Any

import httpx

from printcloud import __version__

USER_AGENT = f"printcloud/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(headers=headers, **kwargs)


def client(**kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.Client(headers=headers, **kwargs)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(`error`, `error_description`) of another service's JSON error answer (the
    OAuth-style shape every printcloud API answers); an empty string for what it lacks,
    both when the answer is not a JSON object."""
    body = _error_body(response)
    description = body.get("error_description") or body.get("detail") or ""
    return str(body.get("error") or ""), str(description)


def error_field(response: httpx.Response) -> str | None:
    """The input field another service's error answer blames (`field`), if it names one."""
    field = _error_body(response).get("field")
    return None if field is None else str(field)


def error_text(response: httpx.Response, *, limit: int = 500) -> str:
    """A short text saying why another service refused: its `error_description`, else
    its `error`, else the start of its body, else `HTTP <status>`."""
    code, description = error_of(response)
    text = description or code or response.text.strip() or f"HTTP {response.status_code}"
    return text[:limit]
