"""A browser for the demo: it signs in and consents through the real HTML forms."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the demo reads the redirect's Location


class Browser:
    """A cookie-keeping HTTP client that fills in the real HTML forms, as a person would."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=10)

    @staticmethod
    def _csrf(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        if not found:
            raise RuntimeError("no CSRF field on the page")
        return found.group(1)

    def authorize(
        self,
        issuer: str,
        query: dict[str, str],
        *,
        tenant: str,
        username: str,
        password: str,
        tenant_wide: bool = False,
    ) -> tuple[str | None, bool, bool]:
        """Runs the authorization endpoint to its redirect.

        Answers (code, asked, tenant_box_offered)."""
        url = f"/{issuer}/authorize?{urlencode(query)}"
        resp = self.http.get(url)
        if resp.status_code == 303 and "/login" in resp.headers["location"]:
            login_page = self.http.get(resp.headers["location"])
            nxt = parse_qs(urlsplit(resp.headers["location"]).query)["next"][0]
            resp = self.http.post(
                f"/{issuer}/login",
                data={
                    "tenant": tenant,
                    "username": username,
                    "password": password,
                    "csrf": self._csrf(login_page.text),
                    "next": nxt,
                },
            )
            if resp.status_code != 303:
                raise RuntimeError(f"login failed: {resp.status_code}")
            resp = self.http.get(resp.headers["location"])
        asked = resp.status_code == 200 and "Allow" in resp.text
        offered = "tenant_wide" in resp.text
        if asked:
            data = {"decision": "allow", "remember": "1", "csrf": self._csrf(resp.text)}
            if tenant_wide:
                data["tenant_wide"] = "1"
            resp = self.http.post(url, data=data)
        location = resp.headers.get("location", "")
        code = parse_qs(urlsplit(location).query).get("code", [None])[0]
        return code, asked, offered

    def session_id(self, issuer: str) -> str | None:
        return self.http.cookies.get(f"pc_sid_{issuer.replace('-', '_')}")


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge
