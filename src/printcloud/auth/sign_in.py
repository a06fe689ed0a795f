"""Sign-in for a service's own web pages (first-party relying parties of an issuer).

One router, mounted by the CRM (idp-b), the print service and docgen (idp-a):

- `GET {prefix}/auth/login`: off to the issuer's authorization endpoint with the
  authorization code flow and PKCE (RFC 6749 §4.1, RFC 7636, S256); the state and
  verifier wait in a sealed cookie for `login_ttl` seconds.
- `GET {prefix}/auth/callback`: the code redeemed, the token checked with the
  service's guard and its `check`, the tokens sealed (`WebSession`) in the
  session cookie; a failure is a page that says why, with "Sign in again".
- `POST {prefix}/auth/logout`: the tokens revoked (RFC 7009) and forgotten, then the
  signed-out page (`GET {prefix}/auth/signed-out`, or in the answer itself).
- `signed_in`: the dependency of every page, the access token refreshed when due
  (once per refresh token: `RefreshOnce`); else a redirect to the sign-in.

`SignInPages` also renders the service's pages (CSRF cookie, `no-store`, the
refreshed session cookie on every answer), since each answer may carry a session
the dependency refreshed. What differs between the services is a parameter.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from printcloud.core import crypto
from printcloud.core.console import Viewer
from printcloud.core.crypto import SecretBox
from printcloud.core.errors import Forbidden, PrintcloudError, Unauthorized, Unavailable
from printcloud.core.guard import Guard, Principal
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.web import check_csrf, csrf_token, set_csrf_cookie

from .client import (
    AuthClient,
    OAuthError,
    RefreshOnce,
    TokenSet,
    WebSession,
    pkce_challenge,
    safe_next,
)

log = get_logger("auth.sign_in")

#: Failing to reach the issuer (the sync `AuthClient` raises these, besides `Unavailable`).
_UNREACHABLE = (httpx.HTTPError, ValueError, KeyError, Unavailable)


class ServiceRuntime(Protocol):
    """What `Issuer.own_client` reads of a service's runtime (the CRM's, the print service's)."""

    settings: Settings
    box: SecretBox
    guard: Guard
    http: httpx.Client

    @property
    def base_url(self) -> str: ...


@dataclass(frozen=True)
class Issuer:
    """The issuer as one service's pages use it, and what they keep from their runtime.
    `refresh` and `redeem` are sync (called in a thread). `redeem(code, verifier)`
    raises `OAuthError` or a `PrintcloudError` when refused, `Unavailable` or an
    httpx error when the issuer does not answer."""

    name: str
    client: AuthClient
    redirect_uri: str
    box: SecretBox
    guard: Guard
    #: Cookies only over HTTPS (the public URL's scheme).
    secure: bool
    refresh: Callable[[str], TokenSet]
    redeem: Callable[[str, str], TokenSet]

    @classmethod
    def own_client(cls, rt: ServiceRuntime, name: str, service: str) -> Issuer:
        """Issuer `name` with `service`'s own client (`Settings.service_client`), which
        redeems the code itself; the issuer answers at `{rt.base_url}/auth/callback`."""
        settings = rt.settings
        client_id, secret = settings.service_client(name, service)
        client = AuthClient(
            settings.issuer_url(name), client_id=client_id, client_secret=secret, http=rt.http
        )
        redirect_uri = f"{rt.base_url}/auth/callback"
        return cls(
            name=name,
            client=client,
            redirect_uri=redirect_uri,
            box=rt.box,
            guard=rt.guard,
            secure=settings.public_url.startswith("https://"),
            refresh=RefreshOnce(client.refresh),
            redeem=lambda code, verifier: client.exchange_code(
                code, redirect_uri=redirect_uri, code_verifier=verifier
            ),
        )


def oauth_error_text(known: dict[str, str], fallback: str) -> Callable[[str, str], str]:
    """An issuer's error answer (RFC 6749 §4.1.2.1) as a sentence a person reads; the
    code and its description go to the log, not to the page."""

    def text(error: str, description: str) -> str:
        log.info("sign-in refused", extra={"fields": {"error": error, "description": description}})
        return known.get(error, fallback)

    return text


#: The issuer's error codes a person may meet at the callback, in words.
_OAUTH_ERROR_WORDS = {
    "access_denied": "The sign-in was declined.",
    "login_required": "You are not signed in at the sign-in service.",
    "invalid_scope": "Your account may not use these pages.",
    "temporarily_unavailable": "The sign-in service is busy. Try again shortly.",
    "server_error": "The sign-in service failed. Try again shortly.",
}


def _plain_oauth_error(error: str, description: str) -> str:
    """The default: words only; the code and its description go to the log."""
    log.info("sign-in refused", extra={"fields": {"error": error, "description": description}})
    return _OAUTH_ERROR_WORDS.get(error, "The sign-in did not complete. Sign in again.")


#: Another flow of the service answering at the same redirect URI: its response, or None.
OtherAnswers = Callable[..., Awaitable[Response | None]]
#: What else a service ends when its person signs out (request, the sign-out's answer).
SignOutHook = Callable[[Request, Response], Awaitable[None]]


class SignInPages:
    """The sign-in router and page helpers of one service's pages under `prefix`."""

    def __init__(
        self,
        *,
        prefix: str,
        pages: Jinja2Templates,
        issuer: Callable[[Request], Issuer],
        scope: str,
        check: Callable[[Principal], str | None],
        session_cookie: str,
        login_cookie: str,
        home: str | None = None,
        refused_at_sign_in: str | None = None,
        error_text: Callable[[str, str], str] = _plain_oauth_error,
        unreachable: str = "the sign-in service does not answer; try again shortly",
        signed_out: str | Callable[[Request, str], Response],
        signed_out_at_logout: bool = False,
        message_flag: str = "error",
        other_answers: OtherAnswers | None = None,
        login_ttl: int = 600,
        refresh_margin: int = 30,
    ) -> None:
        """`check(principal)`: why a signed-in user may not use the pages, or None;
        `refused_at_sign_in`: the callback's sentence for it (default: `check`'s, as a
        sentence). `home`: where to go by default (default `prefix/`). `signed_out`: the
        signed-out page, a template given `issuer` or `(request, issuer) -> page`: at
        `GET auth/signed-out` after the logout's redirect, or (`signed_out_at_logout`)
        the logout's answer itself. `message_flag`: the name `message.html` reads for
        "this is a failure". `other_answers`: another flow of the service that the issuer
        answers at the same redirect URI (its page, or None for a sign-in's answer)."""
        self.prefix = prefix
        self.pages = pages
        self.scope = scope
        self.check = check
        self.session_cookie = session_cookie
        self.login_cookie = login_cookie
        self.home = home or f"{prefix}/"
        self.refused_at_sign_in = refused_at_sign_in
        self.error_text = error_text
        self.unreachable = unreachable
        self.message_flag = message_flag
        self.signed_out_page = signed_out
        self.signed_out_at_logout = signed_out_at_logout
        self.other_answers = other_answers
        self.login_ttl = login_ttl
        self.refresh_margin = refresh_margin
        self._issuer = issuer
        #: Called at sign-out, after the session's own tokens were revoked (e.g. the CRM's
        #: print session at idp-a, seed 000 FIG. 19): each ends what it keeps.
        self.sign_out_hooks: list[SignOutHook] = []
        self._state_key = f"sign_in_{session_cookie}"
        self.router = APIRouter(include_in_schema=False)
        self.router.add_api_route("/auth/login", self.login, methods=["GET"])
        self.router.add_api_route("/auth/callback", self.callback, methods=["GET"])
        self.router.add_api_route("/auth/logout", self.logout, methods=["POST"])
        if not signed_out_at_logout:
            self.router.add_api_route("/auth/signed-out", self.signed_out, methods=["GET"])

    # -- answers ---------------------------------------------------------------------------

    def issuer(self, request: Request) -> Issuer:
        """This app's issuer, made once (it keeps the `RefreshOnce` of its refreshes)."""
        found: Issuer | None = getattr(request.app.state, self._state_key, None)
        if found is None:
            found = self._issuer(request)
            setattr(request.app.state, self._state_key, found)
        return found

    def safe_next(self, target: str | None) -> str:
        """Only a path of these pages: no open redirects."""
        return safe_next(target, prefix=self.prefix, home=self.home)

    def set_cookie(
        self,
        request: Request,
        response: Response,
        name: str,
        value: str,
        max_age: int | None = None,
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.prefix,
            httponly=True,
            samesite="lax",
            secure=self.issuer(request).secure,
        )

    def delete_cookie(self, request: Request, response: Response, name: str) -> None:
        response.delete_cookie(
            name,
            path=self.prefix,
            httponly=True,
            samesite="lax",
            secure=self.issuer(request).secure,
        )

    def finish(self, request: Request, response: Response) -> Response:
        """Every answer: the CSRF cookie, and the session cookie when it was refreshed."""
        set_csrf_cookie(request, response, secure=self.issuer(request).secure)
        sealed = getattr(request.state, "refreshed_session", None)
        if sealed:
            self.set_cookie(request, response, self.session_cookie, sealed)
        return response

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        context["csrf"] = csrf_token(request)
        response: HTMLResponse = self.pages.TemplateResponse(
            request, name, context, status_code=status_code
        )
        response.headers["Cache-Control"] = "no-store"
        return self.finish(request, response)

    def message(
        self, request: Request, status_code: int, title: str, message: str, **context: Any
    ) -> Response:
        """`message.html`: a sentence, marked as a failure from status 400 on."""
        context[self.message_flag] = status_code >= 400
        return self.render(
            request, "message.html", status_code, title=title, message=message, **context
        )

    def pending(self, request: Request, cookie: str) -> dict[str, str] | None:
        """A trip to an issuer this browser started (sealed: not forgeable), if not too old."""
        sealed = request.cookies.get(cookie)
        if not sealed or len(sealed) > 4000:
            return None
        try:
            data = json.loads(self.issuer(request).box.open(sealed))
            if float(data.pop("until")) < time.time():
                return None
            return {str(k): str(v) for k, v in data.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    # -- the session -------------------------------------------------------------------------

    async def _refresh(self, request: Request, current: WebSession) -> WebSession | None:
        if not current.refresh_token:
            return None
        issuer = self.issuer(request)
        try:
            issued = await run_in_threadpool(issuer.refresh, current.refresh_token)
        except OAuthError as exc:
            log.info("refresh refused", extra={"fields": {"error": exc.error}})
            return None
        except _UNREACHABLE as exc:
            raise Unavailable(self.unreachable.format(issuer=issuer.name)) from exc
        fresh = WebSession.issued(issued, previous=current)
        request.state.refreshed_session = fresh.seal(issuer.box)
        return fresh

    def _sign_in_first(self, request: Request) -> StarletteHTTPException:
        """A redirect to the sign-in and back (after a POST: home). Raised, as a
        dependency cannot answer; the error handler keeps its Location."""
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            here = self.home
        location = f"{self.prefix}/auth/login?{urlencode({'next': self.safe_next(here)})}"
        return StarletteHTTPException(303, "sign in first", headers={"Location": location})

    async def signed_in(self, request: Request) -> Principal:
        """The signed-in user, the access token refreshed when due; else a redirect to
        the sign-in. A user `check` refuses is answered 403."""
        issuer = self.issuer(request)
        current = WebSession.unseal(issuer.box, request.cookies.get(self.session_cookie))
        refreshed = False
        if current is not None and current.expires_at - self.refresh_margin <= time.time():
            current, refreshed = await self._refresh(request, current), True
        while current is not None:
            try:
                principal = await issuer.guard.verify(current.access_token)
            except Unauthorized:  # revoked, or expired early: one refresh
                if refreshed:
                    break
                current, refreshed = await self._refresh(request, current), True
                continue
            request.state.principal = principal  # the navigation of the answer, even a 403
            refusal = self.check(principal)
            if refusal:
                raise Forbidden(refusal)
            return principal
        raise self._sign_in_first(request)

    def session(self, request: Request) -> WebSession | None:
        """The signed-in browser's tokens as this request holds them (refreshed by
        `signed_in` when it was due): for a page that calls another service as the person
        (the CRM's print, seed 000 FIG. 19). Never put them in a page."""
        sealed = getattr(request.state, "refreshed_session", None)
        return WebSession.unseal(
            self.issuer(request).box, sealed or request.cookies.get(self.session_cookie)
        )

    async def viewer(self, request: Request) -> Viewer | None:
        """Who is signed in, for an error page's navigation (`app.state.console_viewer`):
        the session's access token checked, never refreshed (an error page sets no cookie)."""
        issuer = self.issuer(request)
        current = WebSession.unseal(issuer.box, request.cookies.get(self.session_cookie))
        if current is None or current.expires_at <= time.time():
            return None
        try:
            principal = await issuer.guard.verify(current.access_token)
        except Unauthorized:
            return None
        return Viewer.of(principal, self.prefix.strip("/"))

    # -- the routes: RFC 6749 §4.1 with RFC 7636 -------------------------------------------------

    async def login(
        self, request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
    ) -> Response:
        issuer = self.issuer(request)
        try:
            meta = await run_in_threadpool(issuer.client.metadata)
            endpoint = str(meta["authorization_endpoint"])
        except _UNREACHABLE as exc:
            log.warning("issuer metadata unavailable: %r", exc)
            return self.message(
                request,
                503,
                "Sign-in is unavailable",
                "The sign-in service does not answer. Try again shortly.",
            )
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": issuer.client.client_id,
            "redirect_uri": issuer.redirect_uri,
            "scope": self.scope,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        trip = {
            "state": state,
            "verifier": verifier,
            "next": self.safe_next(next),
            "until": time.time() + self.login_ttl,
        }
        response = RedirectResponse(f"{endpoint}?{urlencode(query)}", status_code=303)
        response.headers["Cache-Control"] = "no-store"
        sealed = issuer.box.seal(json.dumps(trip))
        self.set_cookie(request, response, self.login_cookie, sealed, max_age=self.login_ttl)
        return self.finish(request, response)

    async def callback(
        self,
        request: Request,
        code: Annotated[str, Query(max_length=512)] = "",
        state: Annotated[str, Query(max_length=512)] = "",
        error: Annotated[str, Query(max_length=100)] = "",
        error_description: Annotated[str, Query(max_length=1000)] = "",
    ) -> Response:
        if self.other_answers is not None:
            other = await self.other_answers(
                request, code=code, state=state, error=error, error_description=error_description
            )
            if other is not None:
                return other
        issuer = self.issuer(request)
        pending = self.pending(request, self.login_cookie)
        retry = (
            f"{self.prefix}/auth/login?{urlencode({'next': pending['next'] if pending else ''})}"
        )

        def failed(status_code: int, message: str) -> Response:
            response = self.message(
                request, status_code, "You are not signed in", message, retry=retry
            )
            self.delete_cookie(request, response, self.login_cookie)
            return response

        if error:
            return failed(400, self.error_text(error, error_description))
        if pending is None:
            return failed(400, "The sign-in took too long or began in another browser.")
        if not (code and state and crypto.equal(state, pending["state"])):
            return failed(400, "The sign-in answer does not belong to this browser's sign-in.")
        try:
            issued = await run_in_threadpool(issuer.redeem, code, pending["verifier"])
            principal = await issuer.guard.verify(issued.access_token)
        except OAuthError as exc:
            log.info("code not redeemed", extra={"fields": {"error": exc.error}})
            return failed(400, "The sign-in service refused the sign-in. Sign in again.")
        except Unauthorized:
            return failed(400, "The sign-in service issued a token that is not valid.")
        except _UNREACHABLE:
            return failed(503, "The sign-in service does not answer. Try again shortly.")
        except PrintcloudError as exc:  # a refusal the service's `redeem` words itself
            return failed(400, f"The sign-in service refused the sign-in: {exc.description}")
        refusal = self.check(principal)
        if refusal:
            return failed(403, self.refused_at_sign_in or f"{refusal[0].upper()}{refusal[1:]}.")
        log.info(
            "signed in",
            extra={"fields": {"tenant": principal.tenant_id, "user": principal.acting_user}},
        )
        response = RedirectResponse(pending["next"], status_code=303)
        response.headers["Cache-Control"] = "no-store"
        self.set_cookie(
            request, response, self.session_cookie, WebSession.issued(issued).seal(issuer.box)
        )
        self.delete_cookie(request, response, self.login_cookie)
        return self.finish(request, response)

    async def logout(
        self, request: Request, csrf: Annotated[str, Form(max_length=100)] = ""
    ) -> Response:
        if not check_csrf(request, csrf):
            return self.message(request, 400, "Your form expired", "Go back and sign out again.")
        issuer = self.issuer(request)
        current = WebSession.unseal(issuer.box, request.cookies.get(self.session_cookie))
        if current is not None:
            issuer.guard.forget(current.access_token)
            await run_in_threadpool(_revoke, issuer.client, current)
        if self.signed_out_at_logout:  # rendered: it carries its own cookies
            response = self._signed_out_page(request, issuer.name)
        else:
            response = self.finish(
                request, RedirectResponse(f"{self.prefix}/auth/signed-out", status_code=303)
            )
        self.delete_cookie(request, response, self.session_cookie)
        for hook in self.sign_out_hooks:
            await hook(request, response)
        return response

    async def signed_out(self, request: Request) -> Response:
        return self._signed_out_page(request, self.issuer(request).name)

    def _signed_out_page(self, request: Request, issuer: str) -> Response:
        if isinstance(self.signed_out_page, str):
            return self.render(request, self.signed_out_page, issuer=issuer)
        return self.signed_out_page(request, issuer)


def _revoke(client: AuthClient, current: WebSession) -> None:
    for token in (current.refresh_token, current.access_token):
        if token:
            try:
                client.revoke(token)
            except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("token not revoked at sign-out: %r", exc)
