"""docgen's pages driven by an administrator's browser that signs in at whichever issuer asks."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from tests.conftest import Stack
from tests.helpers.browser import Browser, form_to
from tests.helpers.docgen import Docgen

PASSWORD = "correct horse"


@dataclass
class Org:
    """A tenant of idp-a with an administrator (and docgen's tenant of the same ID)."""

    tenant: str
    admin: str = "boss"

    @property
    def credentials(self) -> tuple[str, str, str]:
        return self.tenant, self.admin, PASSWORD


def org(stack: Stack) -> Org:
    tenant = stack.tenant(prefix="a")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    return Org(tenant)


class AdminBrowser(Browser):
    """A browser at docgen's pages that signs in at whichever issuer asks."""

    def __init__(self, docgen: Docgen, logins: dict[str, tuple[str, str, str]]) -> None:
        super().__init__(docgen.stack.base_url)
        self.docgen = docgen
        self.logins = logins
        self.trail: list[str] = []

    def follow(self, response: httpx.Response) -> httpx.Response:
        """Follow redirects across docgen and the issuers, signing in when a login page comes."""
        self.trail = [urlsplit(str(response.url)).path]
        for _ in range(15):
            if not response.is_redirect:
                return response
            target = urljoin(str(response.url), response.headers["location"])
            path = urlsplit(target).path
            self.trail.append(path)
            issuer = path.split("/")[1]
            if path == f"/{issuer}/login":
                page = self.http.get(target)
                assert page.status_code == 200, page.text
                form = form_to(page.text, f"/{issuer}/login")
                tenant, username, password = self.logins[issuer]
                response = self.http.post(
                    urljoin(target, form.action),
                    data={
                        **form.hidden,
                        "tenant": tenant,
                        "username": username,
                        "password": password,
                    },
                )
            else:
                response = self.http.get(target)
        raise AssertionError(f"too many redirects: {self.trail}")

    def open(self, path: str) -> httpx.Response:
        return self.follow(self.http.get(f"{self.docgen.base_url}{path}"))

    def submit(self, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
        form = form_to(page.text, f"/docgen{action}")
        answer = self.http.post(urljoin(str(page.url), form.action), data={**form.hidden, **fields})
        return self.follow(answer)


def text_of(page: httpx.Response, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page.text, re.S)
    assert found, f"no #{element_id} in {page.text[:3000]}"
    return html.unescape(found.group(1)).strip()
