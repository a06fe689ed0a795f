"""The printer's local web panel: the card reader (`cards.py`) in a browser.

A small `http.server` beside the agent, on loopback unless told otherwise
(`--panel HOST:PORT`). Plain HTML forms, no JavaScript, no external assets:

    GET  /panel                 the panel: tap a card, or register it, or the held jobs
    POST /panel/tap             card_id → logged in, or the registration form
    POST /panel/register        username, password → the card registered, logged in
    POST /panel/cancel          forget the card awaiting registration
    POST /panel/release         job_id → that held job goes on to print
    POST /panel/release-all     every held job goes on to print
    POST /panel/logout          forget (and revoke) the user's token

Every POST answers 303 to /panel (post/redirect/get) with the outcome as a
message. A browser's panel session lives in memory, keyed by a random cookie
(HttpOnly, SameSite=Strict), and ends after `idle` seconds without a request:
then the user's token is revoked. The cookie is issued anew at each login.
Forms carry the session's CSRF token; a POST without it changes nothing (403).
Requests naming a host other than the panel's own address are refused (DNS
rebinding), unless the panel listens on every address. All output is escaped.

The recent printing status names only the jobs released in this browser
session; other people's jobs show without their titles. An Identify-Printer request
(PWG 5100.13 §4.1.2) shows as a banner with the client's message on every page
served in the minute after it arrived (`status.BANNER_SECONDS`).
"""

from __future__ import annotations

import hmac
import html
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from printcloud.core.logs import get_logger
from printcloud.device.cards import (
    CardError,
    CardReader,
    CardSession,
    HeldJob,
    InvalidCredentials,
    RegistrationNeeded,
    SessionEnded,
)
from printcloud.device.config import DeviceConfig, DeviceError
from printcloud.device.push import parse_listen
from printcloud.device.status import PrintStatus

__all__ = ["COOKIE", "Panel", "panel_address"]

log = get_logger("device.panel")

COOKIE = "pc_panel"
MAX_BODY = 16 * 1024
MAX_SESSIONS = 256
DEFAULT_IDLE = 180.0
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104  (compared with, never bound here)
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def panel_address(text: str) -> str:
    """`PORT` or `HOST:PORT` → `HOST:PORT`, loopback when no host is given."""
    text = text.strip()
    if text.isdigit():
        return f"127.0.0.1:{text}"
    parse_listen(text)  # a ValueError names what is wrong
    return text


@dataclass
class _Session:
    sid: str
    csrf: str
    seen: float
    pending: RegistrationNeeded | None = None
    card: CardSession | None = None
    #: (kind, text) shown once: kind is ok, info or error
    flash: list[tuple[str, str]] = field(default_factory=list)
    #: the held jobs last shown (id → title), and those released here (id → title)
    shown: dict[str, str] = field(default_factory=dict)
    released: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def say(self, kind: str, text: str) -> None:
        self.flash = [*self.flash[-4:], (kind, text)]

    def end_card(self) -> None:
        card, self.card = self.card, None
        self.pending = None
        self.shown = {}
        if card is not None:
            card.logout()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    panel: Panel


class _Server6(_Server):
    address_family = socket.AF_INET6


class Panel:
    """The web panel of one printer; `start()` serves it on a thread, `close()` stops it."""

    def __init__(
        self,
        config: DeviceConfig,
        reader: CardReader,
        status: PrintStatus,
        *,
        listen: str = "127.0.0.1:0",
        idle: float = DEFAULT_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: seconds, for the idle sessions (a test's own clock, which it moves)."""
        self.config = config
        self.reader = reader
        self.status = status
        self.listen = panel_address(listen)
        self.idle = idle
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle

    def __enter__(self) -> Panel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> str:
        if self._server is None:
            host, port = parse_listen(self.listen)
            server_class = _Server6 if ":" in host else _Server
            server = server_class((host, port), _Handler)
            server.panel = self
            self._server = server
            self._stop.clear()
            self._threads = [
                threading.Thread(target=server.serve_forever, name="device-panel", daemon=True),
                threading.Thread(target=self._janitor, name="device-panel-idle", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            log.info("card panel on %s", self.url)
        return self.url

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            self._end(session)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the panel is not started")
        address = self._server.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{address[1]}/panel"

    def allowed_host(self, header: str | None) -> bool:
        """The Host header names this panel (a rebound DNS name does not)."""
        if self._server is None or not header:
            return False
        host, port = self._server.server_address[:2]
        bound = host.decode() if isinstance(host, bytes) else str(host)
        if bound in _WILDCARDS:
            return True
        names = {bound, f"[{bound}]", "localhost", "127.0.0.1", "[::1]"}
        return header.lower() in {f"{name}:{port}" for name in names}

    # -- sessions

    def _janitor(self) -> None:
        while not self._stop.wait(min(5.0, max(0.2, self.idle / 4))):
            self._expire()

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            old = [s for s in self._sessions.values() if now - s.seen > self.idle]
            for session in old:
                del self._sessions[session.sid]
        for session in old:
            self._end(session)

    def _end(self, session: _Session) -> None:
        with session.lock:
            try:
                session.end_card()
            except DeviceError as exc:  # the revocation is best effort; log why
                log.warning("panel session ended, logout failed: %s", exc)

    def session(self, sid: str | None) -> _Session | None:
        """The live session of a cookie, its idle clock restarted; None when unknown/expired."""
        self._expire()
        with self._lock:
            session = self._sessions.get(sid or "")
            if session is not None:
                session.seen = self._clock()
            return session

    def new_session(self) -> _Session:
        session = _Session(
            sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), seen=self._clock()
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.seen)
                del self._sessions[oldest.sid]
            else:
                oldest = None
            self._sessions[session.sid] = session
        if oldest is not None:
            self._end(oldest)
        return session

    def renew(self, session: _Session) -> None:
        """A new cookie and CSRF token at login: a cookie planted before it is worthless."""
        with self._lock:
            self._sessions.pop(session.sid, None)
            session.sid = secrets.token_urlsafe(32)
            session.csrf = secrets.token_urlsafe(32)
            self._sessions[session.sid] = session

    # -- actions (the session's lock is held)

    def tap(self, session: _Session, form: dict[str, str]) -> None:
        session.end_card()
        answer = self.reader.tap(form.get("card_id", ""))
        if isinstance(answer, RegistrationNeeded):
            session.pending = answer
            session.say(
                "info",
                f"Card {answer.hint} is not registered. Log in with your directory account "
                "to register it.",
            )
            return
        self._logged_in(session, answer)

    def register(self, session: _Session, form: dict[str, str]) -> None:
        pending = session.pending
        if pending is None:
            session.say("error", "Tap your card first.")
            return
        card = self.reader.register(
            pending.card_id, form.get("username", ""), form.get("password", "")
        )
        session.say("ok", f"Card {pending.hint} is now registered to {card.user.name}.")
        self._logged_in(session, card)

    def _logged_in(self, session: _Session, card: CardSession) -> None:
        session.pending = None
        session.card = card
        session.released = {}
        self.renew(session)
        session.say("ok", f"Hello {card.user.name} ({card.user.id}).")

    def cancel(self, session: _Session, form: dict[str, str]) -> None:
        session.pending = None
        session.say("info", "Registration cancelled.")

    def release(self, session: _Session, form: dict[str, str]) -> None:
        card = self._card(session)
        job_id = form.get("job_id", "")
        title = session.shown.get(job_id, job_id)
        card.release(job_id)
        session.released[job_id] = title
        session.say("ok", f"Released “{title}”: it prints in a moment.")

    def release_all(self, session: _Session, form: dict[str, str]) -> None:
        card = self._card(session)
        released = card.release_all()
        for job in released:
            session.released[job.job_id] = job.title
        if released:
            session.say("ok", f"Released {len(released)} job(s): they print in a moment.")
        else:
            session.say("info", "No held jobs to release.")

    def logout(self, session: _Session, form: dict[str, str]) -> None:
        was = session.card
        session.end_card()
        session.released = {}
        session.say("info", "Logged out." if was is not None else "You were not logged in.")

    def _card(self, session: _Session) -> CardSession:
        if session.card is None or not session.card.active:
            session.card = None
            raise SessionEnded("You are not logged in: tap your card.")
        return session.card

    # -- the page

    def render(self, session: _Session) -> tuple[str, bool]:
        """The panel's HTML for this session, and whether it should refresh by itself."""
        csrf = html.escape(session.csrf)
        parts: list[str] = []
        flash, session.flash = session.flash, []
        refresh = False
        card = session.card if session.card is not None and session.card.active else None
        if session.card is not None and card is None:
            session.card = None
            flash.append(("info", "Your login ended: tap your card again."))
        jobs: list[HeldJob] = []
        if card is not None:
            try:
                jobs = card.held()
            except SessionEnded as exc:
                session.card, card = None, None
                flash.append(("error", str(exc)))
            except DeviceError as exc:
                flash.append(("error", f"Your held jobs could not be listed: {exc}"))
        banner = self.status.banner()
        if banner is not None:  # Identify-Printer: someone is looking for this printer
            said = f": {_e(banner.message)}" if banner.message else ""
            parts.append(
                f'<p class="msg identify" id="identify" role="alert">'
                f"<strong>This printer was asked to identify itself</strong>{said}</p>"
            )
        for kind, text in flash:
            parts.append(f'<p class="msg {kind}" role="status">{_e(text)}</p>')
        if card is not None:
            session.shown = {job.job_id: job.title for job in jobs}
            parts.append(_jobs_html(card, jobs, csrf))
            refresh = any(
                (s := self.status.get(j)) is None or not s.final for j in session.released
            )
        elif session.pending is not None:
            parts.append(_register_html(session.pending, csrf))
        else:
            parts.append(_tap_html(csrf))
        parts.append(self._status_html(session))
        return _page(self.config, "\n".join(parts), refresh=refresh), refresh

    def _status_html(self, session: _Session) -> str:
        recent = self.status.recent()
        if not recent:
            return '<section><h2>Printing</h2><p class="quiet">Nothing printed yet.</p></section>'
        rows = []
        for job in recent[:10]:
            mine = job.job_id in session.released
            title = _e(session.released[job.job_id]) if mine else "<i>a job</i>"
            pages = f"{job.page}/{job.page_count}" if job.page_count else str(job.page)
            detail = _e(job.message) if mine and job.state != "printed" else ""
            rows.append(
                f'<tr class="{_e(job.state)}"><td>{title}</td><td>{_e(job.state)}</td>'
                f"<td>{_e(pages)}</td><td>{_e(job.at.astimezone().strftime('%H:%M:%S'))}</td>"
                f"<td>{detail}</td></tr>"
            )
        return (
            '<section><h2>Printing</h2><table id="printing"><thead><tr><th>Job</th><th>State</th>'
            "<th>Pages</th><th>At</th><th></th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></section>"
        )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _form(action: str, csrf: str, body: str, *, cls: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    return (
        f'<form method="post" action="/panel/{action}"{extra}>'
        f'<input type="hidden" name="csrf" value="{csrf}">{body}</form>'
    )


def _tap_html(csrf: str) -> str:
    return (
        "<section><h2>Tap your card</h2>"
        + _form(
            "tap",
            csrf,
            '<label for="card_id">Card ID</label> '
            '<input id="card_id" name="card_id" type="password" autocomplete="off" autofocus '
            'required maxlength="128"> <button type="submit">Log in</button>',
        )
        + "</section>"
    )


def _register_html(pending: RegistrationNeeded, csrf: str) -> str:
    return (
        f"<section><h2>Register card {_e(pending.hint)}</h2>"
        "<p>Log in with your directory account: the card is yours from then on.</p>"
        + _form(
            "register",
            csrf,
            '<p><label for="username">Directory user name</label> '
            '<input id="username" name="username" autocomplete="username" autofocus required '
            'maxlength="256"></p>'
            '<p><label for="password">Password</label> '
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required maxlength="1024"></p>'
            '<button type="submit">Register and log in</button>',
        )
        + _form("cancel", csrf, '<button type="submit">Cancel</button>', cls="inline")
        + "</section>"
    )


def _jobs_html(card: CardSession, jobs: list[HeldJob], csrf: str) -> str:
    head = (
        f'<section><h2>Held jobs of <span id="user">{_e(card.user.name)}</span> '
        f'<span class="quiet">({_e(card.user.id)})</span></h2>'
    )
    logout = _form("logout", csrf, '<button type="submit">Log out</button>', cls="inline")
    if not jobs:
        return (
            head
            + '<p id="no-jobs">No held jobs for you at this printer.</p>'
            + logout
            + ("</section>")
        )
    rows = []
    for job in jobs:
        pages = "" if job.pages is None else str(job.pages)
        copies = f" × {job.copies}" if job.copies > 1 else ""
        rows.append(
            f'<tr data-job="{_e(job.job_id)}"><td>{_e(job.title)}</td>'
            f"<td>{_e(pages + copies)}</td><td>{'color' if job.color else 'mono'}</td>"
            f"<td>{_e(job.submitted_text)}</td><td>"
            + _form(
                "release",
                csrf,
                f'<input type="hidden" name="job_id" value="{_e(job.job_id)}">'
                f'<button type="submit" aria-label="Release {_e(job.title)}">Release</button>',
                cls="inline",
            )
            + "</td></tr>"
        )
    return (
        head + '<table id="held"><thead><tr><th>Title</th><th>Pages</th><th></th><th>Submitted</th>'
        "<th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><p>"
        + _form("release-all", csrf, '<button type="submit">Release all</button>', cls="inline")
        + " "
        + logout
        + "</p></section>"
    )


_STYLE = """
body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:46rem;padding:1rem;color:#222}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .5rem}
header p{margin:0;color:#555}.quiet{color:#666}
.msg{padding:.5rem .75rem;border-radius:4px;margin:.5rem 0}
.ok{background:#e6f4ea}.info{background:#e8f0fe}.error{background:#fce8e6;color:#8c1d18}
.identify{background:#fef7e0;font-size:1.2rem}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;text-align:left;
border-bottom:1px solid #ddd}form.inline{display:inline}
input{font-size:1rem;padding:.3rem}button{font-size:1rem;padding:.3rem .8rem}
tr.printed td:nth-child(2){color:#137333}tr.cancelled td:nth-child(2),
tr.error td:nth-child(2){color:#b3261e}
"""


def _page(config: DeviceConfig, body: str, *, refresh: bool) -> str:
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>Printer {_e(config.printer_id)}</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>Printer {_e(config.printer_id)}</h1>"
        f"<p>tenant {_e(config.tenant_id)} · "
        '<a href="/panel">refresh</a></p></header><main>'
        f"{body}</main></body></html>"
    )


Action = Callable[[Panel, _Session, dict[str, str]], None]
_ACTIONS: dict[str, Action] = {
    "/panel/tap": Panel.tap,
    "/panel/register": Panel.register,
    "/panel/cancel": Panel.cancel,
    "/panel/release": Panel.release,
    "/panel/release-all": Panel.release_all,
    "/panel/logout": Panel.logout,
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "printcloud-device"
    sys_version = ""

    # -- answers

    def _send(
        self, status: int, body: str = "", *, location: str | None = None, cookie: str = ""
    ) -> None:
        data = body.encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _problem(self, status: int, text: str) -> None:
        panel = self.server.panel
        body = f'<p class="msg error" role="alert">{_e(text)}</p><p><a href="/panel">Back</a></p>'
        self._send(status, _page(panel.config, body, refresh=False))

    def _cookie(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value
        return None

    # -- GET

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        panel = self.server.panel
        if not panel.allowed_host(self.headers.get("Host")):
            self._problem(421, "This panel answers on its own address only.")
            return
        path = urlsplit(self.path).path
        if path in ("/", "/panel/"):
            self._send(303, location="/panel")
            return
        if path != "/panel":
            self._problem(404, "No such page.")
            return
        session = panel.session(self._cookie())
        fresh = session is None
        if session is None:
            session = panel.new_session()
        try:
            with session.lock:
                page, _ = panel.render(session)
        except Exception:  # a bug must not take the printer's panel down: log it, say so
            log.exception("panel page failed")
            self._problem(500, "The panel failed to show this page; try again.")
            return
        self._send(200, page, cookie=session.sid if fresh else "")

    # -- POST

    def do_POST(self) -> None:
        panel = self.server.panel
        if not panel.allowed_host(self.headers.get("Host")):
            self._problem(421, "This panel answers on its own address only.")
            return
        action = _ACTIONS.get(urlsplit(self.path).path)
        if action is None:
            self._problem(404, "No such action.")
            return
        form = self._form()
        if form is None:
            return
        session = panel.session(self._cookie())
        if session is None:
            session = panel.new_session()
            session.say("error", "Your panel session had expired: start again.")
            self._send(303, location="/panel", cookie=session.sid)
            return
        if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            self._problem(403, "This form is out of date: reload the panel and try again.")
            return
        sid = session.sid
        with session.lock:
            try:
                action(panel, session, form)
            except InvalidCredentials as exc:
                session.say("error", f"Wrong user name or password: {exc}")
            except CardError as exc:
                session.say("error", str(exc))
            except DeviceError as exc:
                session.say("error", f"The printer could not do that: {exc}")
            except Exception:
                log.exception("panel action %s failed", self.path)
                session.say("error", "Something went wrong at the printer; try again.")
        self._send(303, location="/panel", cookie=session.sid if session.sid != sid else "")

    def _form(self) -> dict[str, str] | None:
        """The url-encoded form of the request; None when it was refused (answered)."""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            self._problem(415, "Send the panel's forms.")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._problem(411, "The form has no length.")
            return None
        if not 0 <= length <= MAX_BODY:
            self._problem(413, "The form is too large.")
            return None
        try:
            text = self.rfile.read(length).decode("utf-8")
            fields = parse_qs(text, keep_blank_values=True, max_num_fields=20, errors="strict")
        except (UnicodeDecodeError, ValueError):
            self._problem(400, "The form could not be read.")
            return None
        return {name: values[0] for name, values in fields.items() if values}

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("panel: " + format, *args)
