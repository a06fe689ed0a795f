"""What the sections of the admin API share: who is calling (`Admin`, `AdminDep`),
the rules the admin pages apply too (a tenant the administrator manages, no
self-lockout, hands off the platform's service clients), the committed session,
and the path parameters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from printcloud.core.guard import Principal
from printcloud.core.settings import Settings

from .. import service
from ..models import SYSTEM_TENANT, Client, Tenant, User
from ..runtime import Runtime, runtime_dependency

RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]


async def refuse_nul(request: Request) -> None:
    """Path, query and form values with a NUL character are bad input: PostgreSQL
    text cannot hold one, and the query would fail as a server error."""
    items: list[tuple[str, Any]] = [
        *request.path_params.items(),
        *request.query_params.multi_items(),
    ]
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        items += (await request.form()).multi_items()  # parsed once, cached for the endpoint
    for key, value in items:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidRequest(f"{key} must not contain NUL characters", field=key)


TenantId = Annotated[str, Path(max_length=64)]
Username = Annotated[str, Path(max_length=128)]
ClientId = Annotated[str, Path(max_length=128)]
ConsentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CardId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# -- who is calling -------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    """An administrator acting through the API or the admin pages."""

    issuer: str
    #: The administrator's own tenant; the system tenant manages every tenant.
    tenant_id: str
    actor: str
    #: Set for a user, None for a platform service client.
    username: str | None = None

    @classmethod
    def user(cls, issuer: str, *, tenant_id: str, username: str) -> Admin:
        """A user acting as administrator of their tenant (`tenant_id`), through a
        token or through the pages' browser login; the audit log names them
        `user:<username>`."""
        return cls(issuer=issuer, tenant_id=tenant_id, actor=f"user:{username}", username=username)

    @property
    def is_system(self) -> bool:
        return self.tenant_id == SYSTEM_TENANT


def admin_of(db: Session, *, principal: Principal) -> Admin:
    """The administrator a verified token acts as, checked against the database on
    every request (so a demoted or disabled admin loses access at once)."""
    tenant = db.scalar(
        select(Tenant).where(
            Tenant.issuer == principal.issuer, Tenant.tenant_id == principal.tenant_id
        )
    )
    if tenant is None:
        raise Forbidden("the token's tenant no longer exists")
    if principal.user_id:
        user = db.scalar(
            select(User).where(User.tenant_pk == tenant.pk, User.username == principal.user_id)
        )
        if user is None or user.disabled or not user.is_admin:
            raise Forbidden("the token's user is not an administrator of its tenant")
        return Admin.user(principal.issuer, tenant_id=tenant.tenant_id, username=user.username)
    client = service.find_client(db, issuer=principal.issuer, client_id=principal.client_id)
    if (
        client is None
        or client.kind != "service"
        or not tenant.is_system
        or client.tenant_pk != tenant.pk
    ):
        raise Forbidden(
            "only an administrator's token or a platform service client may use the admin API"
        )
    return Admin(
        issuer=principal.issuer, tenant_id=tenant.tenant_id, actor=f"client:{client.client_id}"
    )


async def current_admin(request: Request, issuer: str, rt: RuntimeDep) -> Admin:
    rt.server(issuer)
    principal = await rt.guards[issuer].require("admin")(request)

    def check() -> Admin:
        with rt.db.session() as db:
            return admin_of(db, principal=principal)

    return await run_in_threadpool(check)


AdminDep = Annotated[Admin, Depends(current_admin)]


# -- rules shared with the admin pages ------------------------------------------------


def managed_tenant(db: Session, *, admin: Admin, tenant_id: str) -> Tenant:
    """The tenant `tenant_id` if `admin` manages it; otherwise the same 404 as a
    tenant that does not exist, so nothing leaks about other tenants."""
    if not admin.is_system and tenant_id != admin.tenant_id:
        raise NotFound(f"no tenant {tenant_id!r}")
    return service.get_tenant(db, issuer=admin.issuer, tenant_id=tenant_id)


def require_system(admin: Admin, what: str) -> None:
    if not admin.is_system:
        raise Forbidden(f"only administrators of the system tenant may {what}")


def refuse_self_lockout(
    admin: Admin,
    *,
    tenant: Tenant,
    user: User,
    delete: bool = False,
    is_admin: bool | None = None,
    disabled: bool | None = None,
) -> None:
    """An administrator may not delete, disable or demote their own account: the
    tenant could be left with nobody to manage it."""
    if (
        admin.username is None
        or tenant.tenant_id != admin.tenant_id
        or user.username != admin.username
    ):
        return
    if delete:
        raise InvalidRequest("you cannot delete your own account", field="username")
    if disabled:
        raise InvalidRequest("you cannot disable your own account", field="disabled")
    if is_admin is False:
        raise InvalidRequest("you cannot remove your own administrator role", field="is_admin")


def refuse_platform_client(settings: Settings, client: Client, action: str) -> None:
    """Platform service clients are re-derived from the instance secret at every
    start (docs/adr/0004); changing one by hand would break the services until then."""
    platform = {settings.service_client(client.issuer, name)[0] for name in service.SERVICES}
    if client.kind == "service" and client.client_id in platform:
        raise InvalidRequest(
            f"platform service client {client.client_id!r} cannot be {action}; "
            "it is managed by printcloud",
            field="client_id",
        )


@contextmanager
def admin_session(rt: Runtime, *, clients_changed: bool = False) -> Iterator[Session]:
    """A committed session; a uniqueness race lost at commit is a 409, not a 500.
    `clients_changed`: the change touched a client or a tenant, so this replica's
    client cache is dropped once it is committed (other replicas follow within
    `client_cache_ttl`)."""
    try:
        with rt.db.session() as db:
            yield db
    except IntegrityError as exc:
        raise Conflict(
            "the change conflicts with another one made at the same time; try again"
        ) from exc
    if clients_changed:
        rt.clients.invalidate()


def no_content() -> Response:
    return Response(status_code=204)
