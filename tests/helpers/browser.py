"""A user agent for the tests: an `httpx.Client` that reads printcloud's real HTML
(login, consent, device, admin and print pages) and submits its forms, CSRF field
included, the way a browser without JavaScript would. No page is mocked.

`Browser` is the one browser; `PrintBrowser` (print pages) and docgen's
`AdminBrowser` (tests/helpers/docgen_admin.py) add how their pages are walked."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from tests.helpers.print_stack import PrintStack

_FORM = re.compile(
    r'<form method="(?P<method>\w+)" action="(?P<action>[^"]*)">(?P<body>.*?)</form>', re.S
)
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


#: The password the admin page tests give their users (`Browser.signed_in`'s default).
PASSWORD = "correct horse battery"


@dataclass
class Form:
    method: str
    action: str
    hidden: dict[str, str] = field(default_factory=dict)


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


class Html(HTMLParser):
    """What the tests look at in a page: forms, form controls and their labels, headings, tables."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.controls: list[dict[str, str]] = []
        self.labelled: set[str] = set()
        self.headings: list[str] = []
        self.tables = 0
        self.table_headers = 0
        self.alerts: list[str] = []
        self.lang = ""
        self._open: list[str] = []
        self._labels = 0
        self._text_into: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        elif tag == "form":
            self.forms.append(Form(a.get("method", "get").lower(), a.get("action", "")))
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1].hidden[a.get("name", "")] = a.get("value", "")
        elif tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **a})
            if self._labels and a.get("id"):
                self.labelled.add(a["id"])
        elif tag == "label":
            self._labels += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        elif tag == "table":
            self.tables += 1
        elif tag == "th":
            self.table_headers += 1
        if tag in ("h1", "h2", "h3"):
            self.headings.append(tag)
        if a.get("role") == "alert":
            self._text_into = []
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._labels -= 1
        if self._open and tag == self._open[-1] and self._text_into is not None:
            self.alerts.append("".join(self._text_into).strip())
            self._text_into = None
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._text_into is not None:
            self._text_into.append(data)

    def form_to(self, action: str) -> Form:
        found = [f for f in self.forms if f.method == "post" and f.action == action]
        assert found, f"no POST form to {action}; forms: {[f.action for f in self.forms]}"
        assert found[0].hidden.get("csrf"), "the form carries no CSRF field"
        return found[0]


def assert_accessible(page: Html) -> None:
    assert page.lang, "the page declares no language"
    assert page.headings.count("h1") == 1, page.headings
    for control in page.controls:
        assert control.get("id") in page.labelled or control.get("aria-label"), (
            f"unlabelled control {control}"
        )
    if page.tables:
        assert page.table_headers >= page.tables


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


class _Served(Protocol):
    @property
    def base_url(self) -> str: ...


class Browser:
    """One person's browser at an issuer (`base`: its URL, or a stack that serves it). Cookies
    (session, CSRF) are kept per path like a browser's."""

    def __init__(
        self,
        base: str | _Served,
        issuer: str = "idp-a",
        *,
        credentials: tuple[str, str, str] | None = None,
    ) -> None:
        self.base_url = base if isinstance(base, str) else base.base_url
        self.issuer = issuer
        self.http = httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=60)
        #: who signs in when `open` meets the login page: tenant, user, password
        self.credentials = credentials
        self.trail: list[str] = []  # the paths of the last `open`

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    @property
    def session_id(self) -> str | None:
        """The browser's authentication session at this issuer (seed 000's AUTH_ID)."""
        value = self.http.cookies.get(f"pc_sid_{self.issuer.replace('-', '_')}")
        return str(value) if value else None

    def csrf(self, page: httpx.Response | None = None) -> str:
        """The CSRF field of `page`, or of the login page fetched now."""
        if page is None:
            page = self.http.get(f"/{self.issuer}/login")
        found = _CSRF_FIELD.search(page.text)
        assert found, page.text[:2000]
        return html.unescape(found.group(1))

    def login(
        self,
        tenant: str,
        username: str,
        password: str,
        *,
        page: httpx.Response | None = None,
        next_: str | None = None,
        status: int | None = 303,
    ) -> httpx.Response:
        """Fill in the login form (fetched now, or `page`) and submit it; answers the server's
        answer, which must be `status` (a 303 with a session cookie), unless `status` is None."""
        if page is None:
            page = self.http.get(f"/{self.issuer}/login")
            assert page.status_code == 200, page.text
        form = form_to(page.text, f"/{self.issuer}/login")
        data = {**form.hidden, "tenant": tenant, "username": username, "password": password}
        if next_ is not None:
            data["next"] = next_
        answer = self.http.post(form.action, data=data)
        if status is not None:
            assert answer.status_code == status, (
                f"login failed ({answer.status_code}): {answer.text[:500]}"
            )
        if status == 303:
            assert self.session_id, "no session cookie after login"
        return answer

    def signed_in(self, tenant: str, username: str, password: str = PASSWORD) -> Browser:
        """This browser, after a successful login."""
        self.login(tenant, username, password)
        return self

    def open(self, url: str) -> httpx.Response:
        """GET `url` and follow redirects on this server, signing in with `credentials` (tenant,
        user, password) at the login page."""
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
                assert self.credentials, "the server asks for a login and no credentials were given"
                response = self.login(*self.credentials, page=self.http.get(target))
            else:
                response = self.http.get(target)
        raise AssertionError(f"too many redirects: {self.trail}")

    # -- pages: GET with the status wanted, the HTML read, forms submitted -------------------

    def get(self, path: str, status: int = 200) -> httpx.Response:
        answer = self.http.get(path)
        assert answer.status_code == status, (
            f"GET {path}: {answer.status_code} {answer.text[:1000]}"
        )
        return answer

    def page(self, path: str) -> Html:
        """The page at `path`, read, and checked to be accessible."""
        page = Html(self.get(path).text)
        assert_accessible(page)
        return page

    def submit_form(
        self, path: str, action: str, data: dict[str, Any] | None = None, *, status: int = 303
    ) -> httpx.Response:
        """Open `path`, fill in its form to `action` and send it."""
        form = self.page(path).form_to(action)
        answer = self.http.post(action, data={**form.hidden, **(data or {})})
        assert answer.status_code == status, (
            f"POST {action}: {answer.status_code} {answer.text[:1000]}"
        )
        return answer

    def follow_page(self, answer: httpx.Response) -> Html:
        """The page a POST-redirect-GET lands on."""
        assert answer.status_code == 303
        return self.page(answer.headers["location"])

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
        super().__init__(stack, credentials=credentials)

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
