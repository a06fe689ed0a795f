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
