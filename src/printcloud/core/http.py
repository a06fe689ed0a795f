"""HTTP clients for service-to-service calls: one factory, sane timeouts.

Tests pass `transport=` (for example `httpx.ASGITransport`) to run a real app
in-process instead of mocking.

A server that speaks TLS with a certificate no public authority signed (the one
`core/tls.py` generates) calls itself at its public `https://` URL: the print page's
sign-in reads idp-a's metadata there, and an IPP login asks idp-a for a token.
`trust_certificate` adds that certificate to what every client made here verifies
against, beside the usual authorities; nothing else is trusted more.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import certifi
import httpx

from printcloud import __version__

USER_AGENT = f"printcloud/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


#: The verification context with the server's own certificate, once it is trusted.
_trusted: dict[str, ssl.SSLContext] = {}


def trust_certificate(path: Path) -> None:
    """Verify every later client's TLS peers against the public authorities and `path`
    (a PEM certificate: the server's own, when it serves TLS)."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=str(path))
    _trusted["verify"] = context


def _defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    if "verify" in _trusted:
        kwargs.setdefault("verify", _trusted["verify"])
    kwargs["headers"] = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return kwargs


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(**_defaults(kwargs))


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(**_defaults(kwargs))


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
