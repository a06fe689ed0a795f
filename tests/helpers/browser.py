"""A user agent for OAuth tests: an `httpx.Client` that reads printcloud's real
HTML (login, consent and device pages) and submits its forms, CSRF field
included, the way a browser without JavaScript would. No page is mocked."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from tests.helpers.print_stack import PrintStack

_FORM = re.compile(
    r'<form method="(?P<method>\w+)" action="(?P<action>[^"]*)">(?P<body>.*?)</form>', re.S
)
_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


@dataclass
class Form:
    method: str
    action: str
    hidden: dict[str, str]


def forms(page: str) -> list[Form]:
    """The forms of an HTML page with their hidden fields (csrf, next, user_code…)."""
    return [
        Form(
            method=m["method"].lower(),
            action=html.unescape(m["action"]),
            hidden={h["name"]: html.unescape(h["value"]) for h in _HIDDEN.finditer(m["body"])},
        )
        for m in _FORM.finditer(page)
    ]


def form_to(page: str, path_prefix: str) -> Form:
    """The page's POST form to `path_prefix`…; fails the test if there is none."""
    found = [f for f in forms(page) if f.method == "post" and f.action.startswith(path_prefix)]
    assert found, f"no POST form to {path_prefix} in page:\n{page[:2000]}"
    assert found[0].hidden.get("csrf"), "the form carries no csrf field"
    return found[0]


@dataclass
class Authorization:
    """How a trip through the authorization endpoint ended."""

    response: httpx.Response
    pages: list[str] = field(
        default_factory=list
    )  # 'login', 'consent' in the order they were shown

    @property
    def location(self) -> str:
        return self.response.headers["location"]


class Browser:
    """One user's browser at an issuer. Cookies (session, CSRF) are kept per path like a browser."""

    def __init__(self, base_url: str, issuer: str = "idp-a") -> None:
        self.base_url = base_url
        self.issuer = issuer
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    @property
    def session_id(self) -> str | None:
        """The browser's authentication session at this issuer (seed 000's AUTH_ID)."""
        value = self.http.cookies.get(f"pc_sid_{self.issuer.replace('-', '_')}")
        return str(value) if value else None

    def login(
        self, tenant: str, username: str, password: str, *, page: httpx.Response | None = None
    ) -> httpx.Response:
        """Fill in the login form (fetched now, or `page`) and submit it; answers the 303."""
        if page is None:
            page = self.http.get(f"/{self.issuer}/login")
            assert page.status_code == 200, page.text
        form = form_to(page.text, f"/{self.issuer}/login")
        answer = self.http.post(
            form.action,
            data={**form.hidden, "tenant": tenant, "username": username, "password": password},
        )
        assert answer.status_code == 303, (
            f"login failed ({answer.status_code}): {answer.text[:500]}"
        )
        assert self.session_id, "no session cookie after login"
        return answer

    def authorize(
        self,
        url: str,
        *,
        credentials: tuple[str, str, str] | None = None,
        decision: str = "allow",
        remember: bool = True,
    ) -> Authorization:
        """Open an authorization URL and follow what the server answers — redirect to the login
        page, sign in with `credentials` (tenant, user, password), consent page, `decision` —
        until a redirect leaves the server or a page has nothing left to submit."""
        result = Authorization(response=self.http.get(url))
        for _ in range(8):
            r = result.response
            if r.is_redirect:
                target = r.headers["location"]
                if not target.startswith("/"):
                    return result  # to the client's redirect_uri
                if target.startswith(f"/{self.issuer}/login"):
                    result.pages.append("login")
                    assert credentials is not None, (
                        "the server asks for a login and no credentials were given"
                    )
                    page = self.http.get(target)
                    result.response = self.login(*credentials, page=page)
                else:
                    result.response = self.http.get(target)
                continue
            consent = [f for f in forms(r.text) if f.action.startswith(f"/{self.issuer}/authorize")]
            if r.status_code != 200 or not consent:
                return result  # an error page
            result.pages.append("consent")
            form = consent[0]
            assert form.hidden.get("csrf"), "the consent form carries no csrf field"
            data = {**form.hidden, "decision": decision}
            if remember:
                data["remember"] = "1"
            result.response = self.http.post(form.action, data=data)
        raise AssertionError("the authorization endpoint kept redirecting")


class PrintBrowser(Browser):
    """A user's browser at the print pages: signs in through idp-a when sent there."""

    def __init__(self, stack: PrintStack, credentials: tuple[str, str, str]) -> None:
        super().__init__(stack.base_url)
        self.credentials = credentials
        self.trail: list[str] = []  # the paths of the last `open`

    def open(self, url: str) -> httpx.Response:
        """GET `url` and follow redirects on this server, signing in at the login page."""
        response = self.http.get(url)
        self.trail = [urlsplit(url).path]
        for _ in range(12):
            if not response.is_redirect:
                return response
            target = response.headers["location"]
            parts = urlsplit(target)
            assert not parts.netloc or target.startswith(self.base_url), f"left for {target}"
            self.trail.append(parts.path)
            if parts.path == f"/{self.issuer}/login":
                response = self.login(*self.credentials, page=self.http.get(target))
            else:
                response = self.http.get(target)
        raise AssertionError(f"too many redirects: {self.trail}")

    def csrf(self, page: httpx.Response) -> str:
        found = _CSRF.search(page.text)
        assert found, page.text[:2000]
        return html.unescape(found.group(1))

    def submit(
        self,
        *,
        printer: str,
        pdf: bytes | None = None,
        filename: str = "report.pdf",
        csrf: str | None = None,
        **fields: str,
    ) -> httpx.Response:
        """Post the print form as a browser does: multipart, with the file part even empty."""
        page = self.http.get("/printing/")
        assert page.status_code == 200, page.text[:500]
        data = {
            "csrf": self.csrf(page) if csrf is None else csrf,
            "printer_id": printer,
            "url": "",
            "title": "",
            "color": "color",
            "copies": "1",
            "media": "A4",
            "dpi": "150",
            **fields,
        }
        if pdf is None:
            files = {"file": ("", b"", "application/octet-stream")}
        else:
            files = {"file": (filename, pdf, "application/pdf")}
        return self.http.post("/printing/jobs", data=data, files=files)

    def post_form(self, page: httpx.Response, action: str) -> httpx.Response:
        form = form_to(page.text, action)
        return self.http.post(form.action, data=form.hidden)
