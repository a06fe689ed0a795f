"""Device authorization grant: RFC 8628 (§3.1–3.2 the device authorization
endpoint, §3.4–3.5 polling and `slow_down`).

A device code is spent by one conditional UPDATE: of two polls that both found
the approved grant unused, only one gets the token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authlib.oauth2 import rfc8628
from authlib.oauth2.rfc6749.errors import InvalidGrantError, UnauthorizedClientError
from sqlalchemy import select, update

from printcloud.core import crypto
from printcloud.core.db import utcnow

from ..models import Client, DeviceGrant, User
from .call import current, current_db, rowcount
from .request import Request
from .views import ClientView, ScopeMixin

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


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
        if rowcount(spent) != 1:
            raise InvalidGrantError("the device code is unknown or was already used")
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_token_response()
        return result


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
