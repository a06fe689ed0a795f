"""The ID-card grant (seed 004): card login and card registration at the device.

An unknown card is answered `registration_required`; sent again with directory
credentials, it is bound to that user (seed 004's self-registration). Failures
count towards lockouts per device, card and directory account.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError, UnauthorizedClientError
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin

from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest

from .. import cards, service
from ..models import Tenant
from .call import NeedsSession, current, current_db
from .views import ScopeMixin


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
