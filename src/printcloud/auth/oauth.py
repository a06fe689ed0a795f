"""OAuth 2.0 on Authlib's framework-agnostic server classes, one server per issuer.

RFC 6749 (code, client credentials, refresh), RFC 7636 (PKCE, S256 only,
required for public clients), RFC 7662 (introspection, with `tenant_id`,
`local_user` and `local_auth_cooperation`), RFC 7009 (revocation), RFC 8628
(device authorization), RFC 8693 (token exchange of a browser's authentication
session, seed 000 S1102–S1107), RFC 8414 (metadata).

Written here because Authlib lacks them: refresh-token reuse detection (a
reused refresh token revokes its whole family), the token-exchange grant,
authorization-code replay revoking what the code issued, and seed 001's
`local_user` on client-credentials requests.

Authlib is synchronous: each call runs in a worker thread with its own DB
session, held in a context variable for the duration of the call.
"""

from __future__ import annotations

import contextvars
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from authlib.oauth2 import rfc6749, rfc7636, rfc8628
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings

from . import cards, service, store
from .models import AccessToken, AuthorizationCode, Client, DeviceGrant, RefreshToken, Tenant, User
from .store import ClientCache, ClientSnapshot, TenantRef

log = get_logger("auth.oauth")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN, not a secret
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
#: subject_token_type for seed 000's AUTH_ID: a browser's authentication session at this issuer.
SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"  # noqa: S105 - a URN, not a secret
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN, not a secret


@dataclass
class Call:
    """What one synchronous Authlib call works with. Without `db` (the hot path
    of client credentials) new token rows are collected in `pending_*`."""

    db: Session | None
    issuer: str
    settings: Settings
    request: OAuth2Request | None = None
    #: The hot-path reader for read-only steps (introspection) run without a session.
    reader: store.HotReader | None = None
    pending_access: list[dict[str, Any]] = field(default_factory=list)
    pending_refresh: list[dict[str, Any]] = field(default_factory=list)
    #: Seed 004's lockouts, the card-ID hash key and the box that opens the directory's
    #: sealed password; card logins of the hot path (written with the token rows).
    cards: cards.CardLimits | None = None
    card_key: bytes = b""
    box: SecretBox | None = None
    pending_logins: list[store.Login] = field(default_factory=list)


class NeedsSession(Exception):
    """The hot path cannot answer this request alone: run it again with a session."""


_call: contextvars.ContextVar[Call] = contextvars.ContextVar("printcloud_oauth_call")


def current() -> Call:
    return _call.get()


def current_db() -> Session:
    db = _call.get().db
    if db is None:
        raise RuntimeError("this OAuth step needs a database session")
    return db


def bind(call: Call) -> contextvars.Token[Call]:
    return _call.set(call)


def unbind(token: contextvars.Token[Call]) -> None:
    _call.reset(token)


# -- the Starlette side of Authlib ----------------------------------------------


class Payload(OAuth2Payload):
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class Request(OAuth2Request):
    """An OAuth2Request built from what a Starlette handler already read."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = Payload(query + form if method == "GET" else form + query)
        self.local_user: dict[str, Any] | None = None
        self.family_id: str | None = None
        self.card_registered = False

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# -- models seen by Authlib ----------------------------------------------------


class ClientView(ClientMixin):
    def __init__(self, row: ClientSnapshot) -> None:
        self.row = row

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def tenant(self) -> TenantRef:
        return self.row.tenant

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.row.redirect_uris[0] if len(self.row.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.row.scope.split()
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, no prefixes

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.row.secret_digest or len(client_secret) > 512:
            return False
        return crypto.equal(self.row.secret_digest, crypto.token_digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.disabled:
            return False
        if self.row.kind == "public":
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class TokenView:
    """A token as Authlib's introspection and revocation endpoints see it."""

    def __init__(self, info: service.TokenInfo) -> None:
        self.info = info

    def check_client(self, client: ClientView) -> bool:
        return self.info.client_pk == client.row.pk

    def get_scope(self) -> str:
        return self.info.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.info.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.info.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return not self.info.active


class DeviceCredential(rfc8628.DeviceCredentialMixin):
    def __init__(self, row: DeviceGrant, client_id: str) -> None:
        self.row = row
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.row.scope

    def get_user_code(self) -> str:
        return self.row.user_code

    def is_expired(self) -> bool:
        return self.row.expires_at <= utcnow()


def _check_scope_for(client: ClientView | None, scope: str | None) -> None:
    if not scope:
        return
    for part in scope.split():
        if part not in service.SCOPES:
            raise InvalidScopeError(f"unknown scope '{part}'")
        if client is not None and part in service.PLATFORM_SCOPES and client.kind != "service":
            raise InvalidScopeError(f"only the platform's own clients may request scope '{part}'")
        if client is not None and part not in client.row.scope.split():
            raise InvalidScopeError(f"the client may not request scope '{part}'")


class ScopeMixin:
    request: Request

    def validate_requested_scope(self) -> None:
        _check_scope_for(self.request.client, self.request.payload.scope)


# -- grants --------------------------------------------------------------------


class S256Challenge(rfc7636.CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"


class CodeGrant(ScopeMixin, AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        data = self.request.payload.data
        if not data.get("state"):
            raise InvalidRequestError("'state' is required", redirect_uri=redirect_uri)
        if self.request.client.kind == "public" and not data.get("code_challenge"):
            raise InvalidRequestError(
                "public clients must send a PKCE 'code_challenge' (S256)", redirect_uri=redirect_uri
            )
        if data.get("code_challenge") and data.get("code_challenge_method", "plain") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        return redirect_uri

    def save_authorization_code(self, code: str, request: Request) -> None:
        call = current()
        user: User = request.user
        data = request.payload.data
        current_db().add(
            AuthorizationCode(
                code_digest=crypto.token_digest(code),
                tenant_pk=user.tenant_pk,
                client_pk=request.client.row.pk,
                user_pk=user.pk,
                redirect_uri=data.get("redirect_uri") or "",
                scope=request.scope or "",
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method")
                if data.get("code_challenge")
                else None,
                expires_at=utcnow() + timedelta(seconds=call.settings.code_ttl),
            )
        )

    def query_authorization_code(self, code: str, client: ClientView) -> AuthorizationCode | None:
        db = current_db()
        row = db.get(AuthorizationCode, crypto.token_digest(code))
        if row is None or row.client_pk != client.row.pk:
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a replayed code revokes what it issued.
            if row.family_id:
                service.revoke_family(db, family_id=row.family_id)
            log.warning(
                "authorization code replayed", extra={"fields": {"client_id": client.row.client_id}}
            )
            return None
        if row.expires_at <= utcnow():
            return None
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Spent by one conditional UPDATE: of two concurrent redemptions that both read the
        # code as unused, only one changes the row; the other is a replay (RFC 6749 §4.1.2).
        db = current_db()
        family = self.request.family_id
        spent = db.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_digest == authorization_code.code_digest,
                AuthorizationCode.used_at.is_(None),
            )
            .values(used_at=utcnow(), family_id=family)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(spent) == 1:
            return
        winner = db.scalar(
            select(AuthorizationCode.family_id).where(
                AuthorizationCode.code_digest == authorization_code.code_digest
            )
        )
        for revoked in {winner, family} - {None}:
            service.revoke_family(db, family_id=str(revoked))
        log.warning(
            "authorization code redeemed twice at once; what it issued is revoked",
            extra={"fields": {"client_id": self.request.client.row.client_id}},
        )
        raise InvalidGrantError("the authorization code was already used")

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = current_db().get(User, authorization_code.user_pk)
        return None if user is None or user.disabled else user

    # Authlib reads these off the code row.
    def get_authorization_code_challenge(
        self, code: AuthorizationCode
    ) -> str | None:  # pragma: no cover
        return code.code_challenge


class CredentialsGrant(ScopeMixin, ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        raw = self.request.form.get("local_user")
        if raw is not None:
            if self.request.client.kind != "device":
                raise InvalidRequestError("only device clients may send 'local_user'")
            try:
                self.request.local_user = service.parse_local_user(raw)
            except InvalidRequest as exc:
                raise InvalidRequestError(exc.description) from exc


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _refresh_reused(db: Session, row: RefreshToken) -> None:
    """Reuse of a rotated refresh token: someone holds a copy. Revoke the family."""
    service.revoke_family(db, family_id=row.family_id)
    service.audit(
        db,
        issuer=current().issuer,
        tenant=db.get(Tenant, row.tenant_pk),
        actor="system",
        action="token.refresh_reuse",
        target=row.family_id[:12],
    )
    log.warning("refresh token reused; family revoked")


class RefreshGrant(ScopeMixin, RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        db = current_db()
        if len(refresh_token) > 512:
            return None
        row = db.get(RefreshToken, crypto.token_digest(refresh_token))
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        if row.rotated_at is not None:
            _refresh_reused(db, row)
            return None
        return row

    def _validate_request_token(self, client: ClientView) -> RefreshToken:
        raw = self.request.form.get("refresh_token")
        if raw is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        token = self.authenticate_refresh_token(raw)
        if token is None or token.client_pk != client.row.pk:
            raise InvalidGrantError("the refresh token is invalid, expired, revoked or reused")
        self.request.family_id = token.family_id
        return token

    def authenticate_user(self, refresh_token: RefreshToken) -> User | ClientView | None:
        if refresh_token.user_pk is None:
            return self.request.client  # a client's own refresh token
        user = current_db().get(User, refresh_token.user_pk)
        return None if user is None or user.disabled else user

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # Rotated by one conditional UPDATE, after the new pair was written in the same
        # transaction: of two concurrent redemptions that both read the token as unused,
        # only one changes the row, and the other is reuse (the whole family is revoked,
        # the new pair it just wrote included).
        db = current_db()
        rotated = db.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_digest == refresh_token.token_digest,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(rotated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if _rowcount(rotated) == 1:
            return
        _refresh_reused(db, refresh_token)
        raise InvalidGrantError("the refresh token is invalid, expired, revoked or reused")


class DeviceGrantType(ScopeMixin, rfc8628.DeviceCodeGrant):
    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        db = current_db()
        row = db.get(DeviceGrant, crypto.token_digest(device_code[:256]))
        if row is None or row.used_at is not None:
            # RFC 6749 §5.2: an unknown or spent grant is invalid_grant, not invalid_request.
            raise InvalidGrantError("the device code is unknown or was already used")
        client = db.get(Client, row.client_pk)
        return DeviceCredential(row, client.client_id if client else "")

    def query_user_grant(self, user_code: str) -> tuple[User | None, bool] | None:
        db = current_db()
        row = db.scalar(select(DeviceGrant).where(DeviceGrant.user_code == user_code))
        if row is None or row.approved is None:
            return None
        user = db.get(User, row.user_pk) if row.user_pk else None
        return user, bool(row.approved and user is not None and not user.disabled)

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        now = utcnow()
        row = credential.row
        last, row.last_poll_at = row.last_poll_at, now
        interval = row.poll_interval or current().settings.device_poll_interval
        if last is not None and (now - last).total_seconds() < interval:
            row.poll_interval = interval + 5  # RFC 8628 §3.5: every slow_down adds 5 seconds
            return True
        return False

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # One conditional UPDATE: of two concurrent polls that both found the approved
        # grant unused, only one gets the token.
        spent = current_db().execute(
            update(DeviceGrant)
            .where(
                DeviceGrant.device_code_digest == self.request.credential.row.device_code_digest,
                DeviceGrant.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if _rowcount(spent) != 1:
            raise InvalidGrantError("the device code is unknown or was already used")
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_token_response()
        return result


class TokenExchangeGrant(ScopeMixin, BaseGrant, TokenEndpointMixin):
    """RFC 8693: a trusted client exchanges a browser's authentication session
    (seed 000's AUTH_ID, S1103–S1106) for an access and a refresh token."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        form = self.request.form
        subject, subject_type = form.get("subject_token"), form.get("subject_token_type")
        if not subject or not subject_type:
            raise InvalidRequestError("'subject_token' and 'subject_token_type' are required")
        if subject_type != SESSION_TOKEN_TYPE:
            raise InvalidRequestError(f"subject_token_type must be {SESSION_TOKEN_TYPE}")
        wanted = form.get("requested_token_type")
        if wanted and wanted != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
        if form.get("actor_token"):
            raise InvalidRequestError("delegation with 'actor_token' is not supported")
        self.validate_requested_scope()
        session = service.find_session(current_db(), issuer=current().issuer, session_id=subject)
        # A platform service exchanges any tenant's session; a tenant's client only its own
        # tenant's (as in introspection), and another tenant's looks like an unknown one.
        foreign = session is not None and session.user.tenant_pk != client.row.tenant.pk
        if session is None or (foreign and client.kind != "service"):
            raise InvalidGrantError("the authentication session is unknown, expired or ended")
        self.request.user = session.user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(
            user=self.request.user, scope=self.request.payload.scope, include_refresh_token=True
        )
        token["issued_token_type"] = ACCESS_TOKEN_TYPE
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class CardGrant(ScopeMixin, BaseGrant, TokenEndpointMixin):
    """Seed 004: a device client logs the user of a card in, or registers the card.

    `card_id` alone: a known card's user gets a token carrying them as the
    device's local user (seed 001's path) and the latest login time is
    recorded; an unknown card is answered `registration_required` (the inquiry
    unit). `card_id` with `username` and `password` (entered at the device):
    checked against the tenant's directory, and only if valid the card is bound
    to that user and the user logged in. Failures count towards lockouts per
    device, per card and per directory account.
    """

    GRANT_TYPE = service.CARD_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if client.kind != "device":
            raise UnauthorizedClientError("only device clients log users in by card")
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        self.validate_requested_scope()
        call = current()
        assert call.cards is not None
        form = self.request.form
        try:
            card_id = cards.normalise_card_id(form.get("card_id"))
        except InvalidRequest as exc:
            raise InvalidRequestError(exc.description) from exc
        ref = client.row.tenant
        digest = cards.card_digest(
            call.card_key, issuer=client.row.issuer, tenant_id=ref.tenant_id, card_id=card_id
        )
        device_key = f"{client.row.issuer}:{client.row.client_id}"
        card_key = f"{client.row.issuer}:{ref.tenant_id}:{digest[:32]}"
        call.cards.check(device=device_key, card=card_key)
        username, password = form.get("username"), form.get("password")
        if call.db is None:
            # The hot path: a known, live card is one indexed read; its login time is
            # written with the token rows (group commit). Anything else needs a session.
            row = (
                None
                if username or password
                else call.reader and call.reader.card_binding(tenant_pk=ref.pk, digest=digest)
            )
            now = utcnow()
            if (
                not row
                or row.user_disabled
                or row.last_login_at < now - timedelta(days=ref.card_retention_days)
            ):
                raise NeedsSession
            call.pending_logins.append((row.binding_pk, row.user_pk, now))
            self.request.local_user = {
                "id": row.username,
                "name": row.display_name or row.username,
                "via": "card",
            }
            self.request.card_registered = False
            return
        db = current_db()
        assert call.box is not None
        tenant = db.get(Tenant, ref.pk)
        assert tenant is not None
        if username is None and password is None:
            user = cards.login(db, tenant=tenant, digest=digest)
            if user is None:
                db.commit()  # an expired binding found on the way stays deleted
                call.cards.fail(device=device_key, card=card_key)
                raise cards.RegistrationRequired(
                    "this card is not registered: send it again with the `username` and "
                    "`password` of your directory account to register it"
                )
            registered = False
        else:
            account_key = f"{tenant.issuer}:{tenant.tenant_id}:{str(username).lower()[:128]}"
            call.cards.account.check(account_key)
            try:
                user, directory = cards.directory_user(
                    db,
                    tenant=tenant,
                    username=str(username or ""),
                    password=str(password or ""),
                    box=call.box,
                    egress=call.settings.egress_policy,
                )
            except cards.InvalidCredentials:
                db.rollback()
                call.cards.fail(device=device_key, card=card_key, account=account_key)
                raise
            cards.register(
                db,
                tenant=tenant,
                card_id=card_id,
                digest=digest,
                user=user,
                device=client.row.client_id,
                directory=directory,
            )
            call.cards.card.reset(card_key)
            registered = True
        self.request.local_user = {
            "id": user.username,
            "name": user.display_name or user.username,
            "via": "card",
        }
        self.request.card_registered = registered

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.payload.scope, include_refresh_token=False)
        self.save_token(token)
        token["local_user"] = self.request.local_user
        token["registered"] = self.request.card_registered
        return 200, token, self.TOKEN_RESPONSE_HEADER


# -- endpoints ------------------------------------------------------------------


class TokenParams:
    """The `token` parameter of introspection and revocation. An unknown
    `token_type_hint` is ignored (RFC 7009 §2.1, RFC 7662 §2.1), where Authlib
    answers 401 unsupported_token_type."""

    def check_params(self, request: Request, client: ClientView) -> None:
        if "token" not in request.form:
            raise InvalidRequestError("'token' is required")


class Introspection(TokenParams, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        call = current()
        if call.reader is not None:
            info = call.reader.lookup(issuer=call.issuer, token=token_string, hint=token_type_hint)
        else:
            info = store.lookup_token(
                current_db().connection(),
                issuer=call.issuer,
                token=token_string,
                hint=token_type_hint,
            )
        return TokenView(info) if info else None

    def check_permission(self, token: TokenView, client: ClientView, request: Request) -> bool:
        # A platform service introspects for every tenant; a tenant's client only its own tenant.
        return client.kind == "service" or token.info.tenant_pk == client.row.tenant_pk

    def introspect_token(self, token: TokenView) -> dict[str, Any]:
        info = token.info
        body: dict[str, Any] = {
            "active": True,
            "scope": info.scope,
            "client_id": info.client_id,
            "token_type": info.kind,
            "exp": int(info.expires_at.timestamp()),
            "iat": int(info.issued_at.timestamp()),
            "sub": info.username or info.client_id,
            "iss": current().settings.issuer_url(current().issuer),
            "tenant_id": info.tenant_id,
            "local_auth_cooperation": info.local_auth_cooperation,
            # Computed now, not when the token was issued: a demoted admin's token says false.
            "admin": info.admin,
            "held_release": info.held_release,
        }
        if info.amr:
            body["amr"] = list(info.amr)
        if info.username:
            body["username"] = info.username
        if info.local_user is not None:
            body["local_user"] = info.local_user
        return body


class Revocation(TokenParams, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_token(self, request: Request, client: ClientView) -> TokenView | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009 §2.2: a token the client may not revoke is answered like an unknown one,
        # so that a client learns nothing about other clients' tokens.
        if token is None or not token.check_client(client):
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        info = service.lookup_token(
            current_db(), issuer=current().issuer, token=token_string, hint=token_type_hint
        )
        return TokenView(info) if info else None

    def revoke_token(self, token: TokenView, request: Request) -> None:
        service.revoke_token(current_db(), info=token.info)


class DeviceAuthorization(rfc8628.DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    USER_CODE_TYPE = "string"

    def get_verification_uri(self) -> str:
        call = current()
        return f"{call.settings.issuer_url(call.issuer)}/device"

    def create_endpoint_response(
        self, request: Request
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        self.EXPIRES_IN = current().settings.device_code_ttl
        self.INTERVAL = current().settings.device_poll_interval
        self.authenticate_client(request)
        if not request.client.check_grant_type(DEVICE_CODE):
            raise UnauthorizedClientError(
                "The client is not authorized to use the device authorization grant"
            )
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = (
            super().create_endpoint_response(request)
        )
        return result

    def save_device_credential(
        self, client_id: str, scope: str | None, data: dict[str, Any]
    ) -> None:
        call = current()
        assert call.request is not None
        client: ClientView = call.request.client
        current_db().add(
            DeviceGrant(
                device_code_digest=crypto.token_digest(data["device_code"]),
                user_code=data["user_code"],
                client_pk=client.row.pk,
                tenant_pk=client.row.tenant_pk,
                scope=client.get_allowed_scope(scope),
                poll_interval=call.settings.device_poll_interval,
                expires_at=utcnow() + timedelta(seconds=data["expires_in"]),
            )
        )


# -- the server -------------------------------------------------------------------


class IssuerServer(rfc6749.AuthorizationServer):
    """The Authlib authorization server of one issuer."""

    def __init__(self, *, issuer: str, settings: Settings, clients: ClientCache) -> None:
        super().__init__(scopes_supported=list(service.SCOPES))
        self.issuer = issuer
        self.settings = settings
        self.clients = clients
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(CredentialsGrant)
        self.register_grant(RefreshGrant)
        self.register_grant(DeviceGrantType)
        self.register_grant(TokenExchangeGrant)
        self.register_grant(CardGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)
        self.register_endpoint(DeviceAuthorization)

    def create_token_response(
        self, request: Request | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        # RFC 6749 §5.2: a missing parameter is invalid_request (Authlib: unsupported_grant_type).
        if request is not None and not request.payload.grant_type:
            return self.handle_error_response(
                request, InvalidRequestError("'grant_type' is required")
            )
        result: tuple[int, Any, dict[str, str]] = super().create_token_response(request)
        return result

    def get_token_grant(self, request: Request) -> Any:
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            error.description = (
                f"grant_type {str(request.payload.grant_type)[:100]!r} is not supported"
            )
            raise

    def query_client(self, client_id: str) -> ClientView | None:
        if not client_id or len(client_id) > 128:
            return None
        snapshot = self.clients.get(self.issuer, client_id)
        return ClientView(snapshot) if snapshot is not None and not snapshot.disabled else None

    def validate_requested_scope(self, scope: str | None) -> None:
        call = current()
        client = call.request.client if call.request is not None else None
        _check_scope_for(client, scope)

    def _generate_token(
        self,
        grant_type: str,
        client: ClientView,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        allowed = client.get_allowed_scope(scope)
        if (isinstance(user, User) and not user.is_admin) or client.kind != "service":
            # `admin` acts for the tenant's administrators only, whatever the client may ask,
            # and only through the platform's own clients
            allowed = " ".join(s for s in allowed.split() if s not in service.PLATFORM_SCOPES)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": crypto.new_token(),
            "expires_in": expires_in or self.settings.access_token_ttl,
            "scope": allowed,
        }
        if include_refresh_token and client.check_grant_type("refresh_token"):
            token["refresh_token"] = crypto.new_token()
        return token

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        call = current()
        client: ClientView = request.client
        user = request.user if isinstance(request.user, User) else None
        tenant_pk = user.tenant_pk if user is not None else client.row.tenant_pk
        now = utcnow()
        family = request.family_id
        grant_type = request.payload.grant_type or "authorization_code"
        # A code's tokens always get a family, so that a replayed code can revoke them.
        if family is None and ("refresh_token" in token or grant_type == "authorization_code"):
            family = secrets.token_hex(16)
            request.family_id = family
        access = [
            {
                "token_digest": crypto.token_digest(token["access_token"]),
                "tenant_pk": tenant_pk,
                "client_pk": client.row.pk,
                "user_pk": user.pk if user else None,
                "local_user": request.local_user,
                "scope": token.get("scope") or "",
                "grant_type": grant_type[:64],
                "issued_at": now,
                "expires_at": now + timedelta(seconds=int(token["expires_in"])),
                "revoked_at": None,
                "family_id": family,
            }
        ]
        refresh: list[dict[str, Any]] = []
        if "refresh_token" in token:
            refresh.append(
                {
                    "token_digest": crypto.token_digest(token["refresh_token"]),
                    "family_id": family,
                    "tenant_pk": tenant_pk,
                    "client_pk": client.row.pk,
                    "user_pk": user.pk if user else None,
                    "scope": token.get("scope") or "",
                    "issued_at": now,
                    "expires_at": now + timedelta(seconds=self.settings.refresh_token_ttl),
                    "rotated_at": None,
                    "revoked_at": None,
                }
            )
        if call.db is None:  # hot path: the caller hands the rows to the group-commit writer
            call.pending_access.extend(access)
            call.pending_refresh.extend(refresh)
            return
        call.db.execute(insert(AccessToken), access)
        if refresh:
            call.db.execute(insert(RefreshToken), refresh)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth signal", extra={"fields": {"signal": name}})

    def create_oauth2_request(self, request: Request) -> Request:
        current().request = request
        return request

    def create_json_request(self, request: Any) -> Any:  # pragma: no cover - no JSON endpoints
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers)

    def metadata(self) -> dict[str, Any]:
        base = self.settings.issuer_url(self.issuer)
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "introspection_endpoint": f"{base}/introspect",
            "revocation_endpoint": f"{base}/revoke",
            "device_authorization_endpoint": f"{base}/device_authorization",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "client_credentials",
                "refresh_token",
                DEVICE_CODE,
                TOKEN_EXCHANGE,
                service.CARD_GRANT,
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(service.SCOPES),
            "service_documentation": f"{base}/docs",
        }
