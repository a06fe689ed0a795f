"""Printing CRM records as the signed-in person (seed 000, second embodiment, FIG. 19).

- `GET /crm/sets/{name}/print?field&op&value&order`: what will print (the records the
  records page's filter selects), the person's printers and the form to print with.
  It needs the person's own idp-a access token with the scope `print`. Without one
  the browser makes a second sign-in at idp-a — the authorization code flow with PKCE
  (RFC 6749 §4.1, RFC 7636, S256) as the CRM's service client `svc-crm` — answered at
  `/crm/print/callback`; idp-a's own sign-in session answers at once for a person
  already signed in there. The token must belong to the docgen tenant the CRM's
  docgen link names (S1412): that is whose documents docgen makes.
- `POST /crm/sets/{name}/print`: `DocgenClient.user_print` (S1901) with the person's
  two tokens — idp-a's for the print service (the seed's AUTH_ID) and the CRM
  session's idp-b one for the records (the seed's `sessionid`); then the request's page.
- `GET /crm/prints/{request_id}`: the request and its print jobs, read with the
  person's own idp-a token (docgen's `/api/print-requests/{id}`): their own jobs,
  in plain words (`core.words`). Refusals are pages that say what to do.

The idp-a tokens live in their own cookie (`pc_crm_print`), sealed with the instance
secret like the CRM session's and bound to the CRM person they were got for (another
person signing in to the CRM in the same browser does not inherit them); they never
reach a page. Forms carry the CSRF token; every read is scoped to the person's tenant.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from printcloud.auth.client import AuthClient, OAuthError, RefreshOnce, TokenSet, pkce_challenge
from printcloud.core import crypto, words
from printcloud.core.errors import InvalidRequest, NotFound, Unavailable
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf
from printcloud.docgen.client import BatchPrintRefused, DocgenClient
from printcloud.printing.client import PrintClient, PrintServiceError

from . import service
from .deps import RuntimeDep, runtime
from .pages import SignedIn, record_page, site
from .runtime import PREFIX, CrmRuntime

log = get_logger("crm.print_pages")
router = APIRouter(include_in_schema=False)

#: The idp-a tokens for printing (sealed), and the trip to idp-a while it lasts.
SESSION_COOKIE = "pc_crm_print"
TRIP_COOKIE = "pc_crm_print_trip"
TRIP_TTL = 600
CALLBACK = "/print/callback"
SCOPE = "print"
#: The forms docgen makes documents with, as the person chooses them.
FORMS = (
    ("invoice", "An invoice per record"),
    ("statement", "One statement of all"),
)
MAX_COPIES = 99
_UNREACHABLE = (httpx.HTTPError, ValueError, KeyError, Unavailable)


# -- idp-a as the CRM's print sign-in uses it ---------------------------------------------------


@dataclass(frozen=True)
class _PlatformIssuer:
    """idp-a (the platform's issuer) with the CRM's client `svc-crm` there."""

    name: str
    client: AuthClient
    redirect_uri: str
    refresh: RefreshOnce


def _platform(request: Request) -> _PlatformIssuer:
    """Made once per app (it keeps the `RefreshOnce` of the refreshes)."""
    found: _PlatformIssuer | None = getattr(request.app.state, "crm_print_issuer", None)
    if found is None:
        rt = runtime(request)
        name = rt.settings.issuers[0]
        client_id, secret = rt.settings.service_client(name, "crm")
        client = AuthClient(
            rt.settings.issuer_url(name), client_id=client_id, client_secret=secret, http=rt.http
        )
        found = _PlatformIssuer(
            name=name,
            client=client,
            redirect_uri=f"{rt.base_url}{CALLBACK}",
            refresh=RefreshOnce(client.refresh),
        )
        request.app.state.crm_print_issuer = found
    return found


@dataclass(frozen=True)
class PrintSession:
    """The person's idp-a tokens for printing, and whom they were got for."""

    access_token: str
    refresh_token: str | None
    expires_at: float
    #: the CRM person (idp-b tenant and user) they belong to
    crm_tenant: str
    crm_user: str
    #: the platform (idp-a) tenant and user they act as
    tenant_id: str
    user: str

    def seal(self, rt: CrmRuntime) -> str:
        return rt.box.seal(json.dumps(asdict(self)))

    @classmethod
    def unseal(cls, rt: CrmRuntime, sealed: str | None) -> PrintSession | None:
        if not sealed or len(sealed) > 4000:
            return None
        try:
            return cls(**json.loads(rt.box.open(sealed)))
        except (ValueError, TypeError):
            return None  # another instance secret, or tampered with: sign in again

    def renewed(self, issued: TokenSet) -> PrintSession:
        return PrintSession(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token or self.refresh_token,
            expires_at=time.time() + issued.expires_in,
            crm_tenant=self.crm_tenant,
            crm_user=self.crm_user,
            tenant_id=self.tenant_id,
            user=self.user,
        )


def _docgen_tenant(rt: CrmRuntime, crm_tenant: str) -> str | None:
    """The docgen tenant this CRM tenant prints for (its docgen link, S1412), if any."""
    with rt.db.sessions() as db:
        try:
            return service.get_docgen_link(db, tenant_id=crm_tenant).docgen_tenant_id
        except NotFound:
            return None


async def _print_session(
    request: Request, rt: CrmRuntime, principal: Principal
) -> PrintSession | None:
    """The person's print session, refreshed when due; None: a (second) sign-in is needed."""
    found = PrintSession.unseal(rt, request.cookies.get(SESSION_COOKIE))
    if found is None or (found.crm_tenant, found.crm_user) != (
        principal.tenant_id,
        principal.acting_user,
    ):
        return None
    if found.expires_at - 30 > time.time():
        return found
    if not found.refresh_token:
        return None
    try:
        issued = await run_in_threadpool(_platform(request).refresh, found.refresh_token)
    except OAuthError as exc:
        log.info("print token refresh refused", extra={"fields": {"error": exc.error}})
        return None
    except _UNREACHABLE:
        return None  # a sign-in trip tells the person if idp-a does not answer
    fresh = found.renewed(issued)
    request.state.print_session = fresh.seal(rt)
    return fresh


def _finish(request: Request, response: Response) -> Response:
    """The CRM's answer, with the print session's cookie when it was refreshed."""
    sealed = getattr(request.state, "print_session", None)
    if sealed:
        site.set_cookie(request, response, SESSION_COOKIE, sealed)
    return response


def _forget(request: Request, response: Response) -> Response:
    site.delete_cookie(request, response, SESSION_COOKIE)
    return response


async def _sign_out(request: Request, response: Response) -> None:
    """Signing out of the CRM ends the print session too: its tokens revoked at idp-a
    (RFC 7009, best effort) and its cookie deleted."""
    found = PrintSession.unseal(runtime(request), request.cookies.get(SESSION_COOKIE))
    _forget(request, response)
    if found is None:
        return
    client = _platform(request).client
    for token in (found.refresh_token, found.access_token):
        if token:
            try:
                await run_in_threadpool(client.revoke, token)
            except (OAuthError, *_UNREACHABLE) as exc:
                log.warning("print token not revoked at sign-out: %r", exc)


site.sign_out_hooks.append(_sign_out)


async def _sign_in_at_platform(request: Request, rt: CrmRuntime, next_path: str) -> Response:
    """Off to idp-a's authorization endpoint (a second sign-in), back to `next_path`."""
    issuer = _platform(request)
    try:
        meta = await run_in_threadpool(issuer.client.metadata)
        endpoint = str(meta["authorization_endpoint"])
    except _UNREACHABLE as exc:
        log.warning("platform issuer metadata unavailable: %r", exc)
        return site.message(
            request,
            503,
            "Printing is unavailable",
            "The printcloud sign-in does not answer, so nothing can be printed now. "
            "Try again in a few minutes.",
        )
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": issuer.client.client_id,
        "redirect_uri": issuer.redirect_uri,
        "scope": SCOPE,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    trip = {
        "state": state,
        "verifier": verifier,
        "next": site.safe_next(next_path),
        "until": time.time() + TRIP_TTL,
    }
    response = RedirectResponse(f"{endpoint}?{urlencode(query)}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    site.set_cookie(request, response, TRIP_COOKIE, rt.box.seal(json.dumps(trip)), TRIP_TTL)
    return site.finish(request, response)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


@router.get(CALLBACK)
async def print_callback(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=100)] = "",
    error_description: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    """idp-a's answer to the second sign-in: the token checked and kept, then back."""
    trip = site.pending(request, TRIP_COOKIE)

    def failed(status_code: int, message: str, retry: str | None = None) -> Response:
        response = site.message(
            request, status_code, "You cannot print yet", message, principal=principal, retry=retry
        )
        site.delete_cookie(request, response, TRIP_COOKIE)
        return response

    if trip is None or not (state and crypto.equal(state, trip["state"])):
        return failed(
            400,
            "The printcloud sign-in took too long or began in another browser. "
            "Go back to the records and press Print again.",
        )
    retry = trip["next"]
    if error:
        said = {
            "access_denied": "You declined to let the CRM print for you.",
            "invalid_scope": "Your printcloud account may not print.",
        }.get(error, "The printcloud sign-in did not complete.")
        return failed(400, said, retry)
    issuer = _platform(request)
    try:
        issued = await run_in_threadpool(
            partial(
                issuer.client.exchange_code,
                code,
                redirect_uri=issuer.redirect_uri,
                code_verifier=trip["verifier"],
            )
        )
        about = await run_in_threadpool(issuer.client.introspect, issued.access_token)
    except OAuthError as exc:
        log.info("print sign-in refused", extra={"fields": {"error": exc.error}})
        return failed(400, "The printcloud sign-in refused the request. Sign in again.", retry)
    except _UNREACHABLE:
        return failed(503, "The printcloud sign-in does not answer. Try again shortly.", retry)
    scopes = str(about.get("scope") or "").split()
    if not about.get("active") or SCOPE not in scopes or not about.get("username"):
        return failed(403, "Your printcloud account may not print.", retry)
    docgen_tenant = await run_in_threadpool(_docgen_tenant, rt, principal.tenant_id)
    if about.get("tenant_id") != docgen_tenant:
        return failed(
            403,
            "You signed in to printcloud with an account of another organisation than the "
            "one this CRM prints for. Sign out of printcloud, then sign in with your account "
            f"of {docgen_tenant or 'your organisation'}.",
            retry,
        )
    session = PrintSession(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_at=time.time() + issued.expires_in,
        crm_tenant=principal.tenant_id,
        crm_user=principal.acting_user,
        tenant_id=str(about["tenant_id"]),
        user=str(about["username"]),
    )
    log.info(
        "signed in for printing",
        extra={"fields": {"tenant": session.tenant_id, "user": session.user}},
    )
    response = RedirectResponse(trip["next"], status_code=303)
    response.headers["Cache-Control"] = "no-store"
    site.set_cookie(request, response, SESSION_COOKIE, session.seal(rt))
    site.delete_cookie(request, response, TRIP_COOKIE)
    return site.finish(request, response)


# -- the print page ----------------------------------------------------------------------------


@dataclass
class _Choice:
    """What the person chose on the print page (strings, as the form sends them)."""

    printer_id: str = ""
    form: str = "invoice"
    color: str = "color"
    copies: str = "1"


def _printers(rt: CrmRuntime, token: str) -> list[dict[str, Any]]:
    return PrintClient(f"{rt.settings.public_url}/printing", http=rt.http).printers(token=token)


def _filters(field: str, op: str, value: str) -> list[dict[str, Any]]:
    return [{"field": field, "op": op, "value": value}] if field else []


async def _print_page(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    session: PrintSession,
    name: str,
    query: dict[str, str],
    *,
    choice: _Choice | None = None,
    problems: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    filters = _filters(query["field"], query["op"], query["value"])
    try:
        selected = await run_in_threadpool(
            record_page, rt, principal.tenant_id, name, filters, query["order"], 1
        )
    except NotFound:
        return site.message(
            request,
            404,
            "No such record set",
            "There is no record set with this name in your organisation.",
            principal=principal,
        )
    except InvalidRequest as exc:
        return site.message(
            request,
            400,
            "These records cannot be printed",
            f"The filter does not work: {exc.description}. Go back and change it.",
            principal=principal,
        )
    printers: list[dict[str, Any]] = []
    try:
        printers = await run_in_threadpool(_printers, rt, session.access_token)
    except PrintServiceError as exc:
        if exc.status == 401:  # the token ended early (revoked): sign in again
            return _forget(request, await _sign_in_at_platform(request, rt, _here(request)))
        log.warning("printer list unavailable: %s", exc)
        error = error or "The print service does not answer, so no printer can be chosen now."
        status_code = max(status_code, 503)
    chosen = choice or _Choice(printer_id=str(printers[0]["printer_id"]) if printers else "")
    return _finish(
        request,
        site.render(
            request,
            "print.html",
            status_code,
            principal=principal,
            page=selected,
            query=query,
            printers=printers,
            forms=FORMS,
            choice=chosen,
            problems=problems or {},
            error=error,
            max_copies=MAX_COPIES,
            printing_as=session.user,
        ),
    )


async def _ready(
    request: Request, rt: CrmRuntime, principal: Principal, back: str
) -> PrintSession | Response:
    """The person's print session, or the page to show instead: no docgen link (printing
    from the CRM is not set up), or the second sign-in (then back to `back`)."""
    if await run_in_threadpool(_docgen_tenant, rt, principal.tenant_id) is None:
        return site.message(
            request,
            409,
            "Printing is not set up",
            "Your organisation has not linked the CRM to printcloud's document service yet. "
            "An administrator registers the link on the Secret key page.",
            principal=principal,
        )
    session = await _print_session(request, rt, principal)
    if session is None:
        return await _sign_in_at_platform(request, rt, back)
    return session


@router.get("/sets/{name}/print")
async def print_form(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    field: Annotated[str, Query(max_length=64)] = "",
    op: Annotated[str, Query(max_length=10)] = "eq",
    value: Annotated[str, Query(max_length=1000)] = "",
    order: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    ready = await _ready(request, rt, principal, _here(request))
    if isinstance(ready, Response):
        return ready
    query = {"field": field, "op": op, "value": value, "order": order}
    return await _print_page(request, rt, principal, ready, name, query)


def _check(choice: _Choice, printers: list[dict[str, Any]]) -> tuple[dict[str, str], int]:
    """Each field's problem in words, and the copies as a number."""
    problems: dict[str, str] = {}
    if choice.printer_id not in {str(p["printer_id"]) for p in printers}:
        problems["printer_id"] = "Choose one of your printers."
    if choice.form not in {key for key, _ in FORMS}:
        problems["form"] = "Choose an invoice or a statement."
    if choice.color not in ("color", "mono"):
        problems["color"] = "Choose colour or black and white."
    copies = int(choice.copies) if choice.copies.strip().isdigit() else 0
    if not 1 <= copies <= MAX_COPIES:
        problems["copies"] = f"Enter a number of copies from 1 to {MAX_COPIES}."
    return problems, copies


def refusal_text(refused: BatchPrintRefused) -> str | None:
    """docgen's refusal of a print request as the person reads it; None: the printcloud
    session ended, and the person signs in again."""
    if refused.status == 401:
        return None
    if refused.status == 403:
        return (
            "Your printcloud account may not print for this organisation. "
            "Sign out of printcloud and sign in with your account there."
        )
    if refused.status >= 500:
        return "The document service does not answer. Nothing was printed; try again shortly."
    return f"The document service refused to print: {refused.description}"


@router.post("/sets/{name}/print")
async def print_records(
    name: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """S1901: the documents printed as this person, with their own two tokens."""
    async with request.form(max_fields=20) as form:
        sent = {k: v for k, v in form.items() if isinstance(v, str)}
    query = {k: sent.get(k, "")[:1000] for k in ("field", "op", "value", "order")}
    choice = _Choice(
        printer_id=sent.get("printer_id", "")[:64],
        form=sent.get("form", "")[:32],
        color=sent.get("color", "")[:8],
        copies=sent.get("copies", "")[:4],
    )
    ready = await _ready(request, rt, principal, _print_url(name, query))
    if isinstance(ready, Response):
        return ready
    page = partial(_print_page, request, rt, principal, ready, name, query, choice=choice)
    if not check_csrf(request, sent.get("csrf")):
        return await page(error="Your form expired. Press Print again.", status_code=400)
    try:
        printers = await run_in_threadpool(_printers, rt, ready.access_token)
    except PrintServiceError as exc:
        if exc.status == 401:
            return _forget(
                request, await _sign_in_at_platform(request, rt, _print_url(name, query))
            )
        return await page(status_code=503)
    problems, copies = _check(choice, printers)
    if problems:
        return await page(problems=problems, status_code=400)
    crm = site.session(request)
    docgen_tenant = await run_in_threadpool(_docgen_tenant, rt, principal.tenant_id)
    if crm is None or docgen_tenant is None:  # signed out or unlinked meanwhile
        return RedirectResponse(f"{PREFIX}/", status_code=303)
    parameters = {
        "record_set": name,
        "filters": _filters(query["field"], query["op"], query["value"]),
        "order": [o.strip() for o in query["order"].split(",") if o.strip()],
        "form": choice.form,
        "print": {
            "printer_id": choice.printer_id,
            "color": choice.color == "color",
            "copies": copies,
        },
    }
    client = DocgenClient(f"{rt.settings.public_url}/docgen", http=rt.http)
    try:
        accepted = await run_in_threadpool(
            partial(
                client.user_print,
                tenant_id=docgen_tenant,
                print_token=ready.access_token,
                crm_token=crm.access_token,
                job=f"{name} printed from the CRM",
                parameters=parameters,
            )
        )
    except BatchPrintRefused as refused:
        log.info(
            "print from the CRM refused",
            extra={"fields": {"tenant": principal.tenant_id, "status": refused.status}},
        )
        said = refusal_text(refused)
        if said is None:  # the printcloud session ended: sign in again, then back here
            again = await _sign_in_at_platform(request, rt, _print_url(name, query))
            return _forget(request, again)
        return await page(error=said, status_code=refused.status if refused.status < 500 else 503)
    log.info(
        "print from the CRM accepted",
        extra={"fields": {"tenant": principal.tenant_id, "request": accepted.request_id}},
    )
    return _finish(
        request,
        site.finish(
            request,
            RedirectResponse(f"{PREFIX}/prints/{accepted.request_id}", status_code=303),
        ),
    )


def _print_url(name: str, query: dict[str, str]) -> str:
    kept = {k: v for k, v in query.items() if v and (k != "op" or query["field"])}
    return f"{PREFIX}/sets/{name}/print" + (f"?{urlencode(kept)}" if kept else "")


# -- the request and its print jobs --------------------------------------------------------------


#: docgen's request IDs (hex); anything else is no request of the person's.
_REQUEST_ID = re.compile(r"[0-9a-f]{1,40}")


def _no_request(request: Request, principal: Principal) -> Response:
    return site.message(
        request,
        404,
        "No such print request",
        "There is no print request of yours with this address.",
        principal=principal,
    )


@router.get("/prints/{request_id}")
async def print_request(
    request_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """The person's print request and its jobs, read with their own idp-a token."""
    if not _REQUEST_ID.fullmatch(request_id):
        return _no_request(request, principal)
    ready = await _ready(request, rt, principal, _here(request))
    if isinstance(ready, Response):
        return ready
    client = DocgenClient(f"{rt.settings.public_url}/docgen", http=rt.http)
    try:
        found = await run_in_threadpool(
            partial(client.own_request, request_id, print_token=ready.access_token)
        )
    except BatchPrintRefused as refused:
        if refused.status == 401:
            return _forget(request, await _sign_in_at_platform(request, rt, _here(request)))
        if refused.status in (403, 404):
            return _no_request(request, principal)
        return site.message(
            request,
            503,
            "Your print request cannot be shown now",
            "The document service does not answer. Your request is kept; try again shortly.",
            principal=principal,
            retry=None,
        )
    asked = found.request
    jobs = [
        {
            **job,
            "said": words.job_said(str(job.get("state") or ""), job.get("reason"))
            if not job.get("error")
            else None,
        }
        for job in found.print_jobs
    ]
    return _finish(
        request,
        site.render(
            request,
            "print_request.html",
            principal=principal,
            asked=asked,
            said=words.print_request_said(str(asked["state"]), asked.get("reason")),
            active=asked["state"] in words.PRINT_REQUEST_ACTIVE,
            jobs=jobs,
            printing_as=ready.user,
        ),
    )
