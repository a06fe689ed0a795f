"""The admin pages' OAuth clients of a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..admin_api.deps import refuse_platform_client
from ..pages import SCOPE_TEXT
from ..runtime import Runtime
from .base import (
    Ctx,
    Done,
    Flag,
    FormCall,
    Page,
    PageCall,
    checked,
    confirm_missing,
    nonblank_lines,
)

router = APIRouter()


GRANT_CHOICES = (
    ("authorization_code", "Authorization code (browser sign-in)"),
    ("refresh_token", "Refresh token"),
    ("client_credentials", "Client credentials"),
    ("urn:ietf:params:oauth:grant-type:device_code", "Device code (RFC 8628)"),
    ("urn:ietf:params:oauth:grant-type:token-exchange", "Token exchange (RFC 8693)"),
)


def _clients(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"clients": service.list_clients(db, tenant=ctx.tenant), **_client_choices(ctx)}


def _client(rt: Runtime, db: Session, ctx: Ctx, *, client_id: str = "", **_: str) -> dict[str, Any]:
    client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
    return {"client": client, **_client_choices(ctx)}


def _client_choices(ctx: Ctx) -> dict[str, Any]:
    kinds = ["confidential", "public", "device"] + (["service"] if ctx.tenant.is_system else [])
    return {
        "kinds": kinds,
        # `admin` is for the platform's own service clients only (the system tenant's)
        "scope_choices": [
            (s, SCOPE_TEXT.get(s, s))
            for s in service.SCOPES
            if ctx.tenant.is_system or s not in service.PLATFORM_SCOPES
        ],
        "grant_choices": GRANT_CHOICES,
    }


CLIENTS = Page("admin/clients.html", "clients", "Clients", _clients)
CLIENT = Page("admin/client.html", "clients", "Client", _client)


@router.get("/{issuer}/admin/clients")
def clients(call: PageCall) -> Response:
    return call.show(CLIENTS)


@router.post("/{issuer}/admin/clients")
def create_client(
    call: FormCall,
    *,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "confidential",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    grant_types: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client, secret = service.create_client(
            db,
            tenant=ctx.tenant,
            name=name,
            kind=kind,
            redirect_uris=nonblank_lines(redirect_uris),
            grant_types=grant_types or None,
            scope=" ".join(scope or []),
            actor=ctx.admin.actor,
        )
        shown = {"client_id": client.client_id, "client_secret": secret}
        return Done(
            f"Client {client.name} registered.",
            f"/clients/{client.client_id}",
            secret=shown,
            clients_changed=True,
        )

    return call.run(
        work,
        page=CLIENTS,
        form={
            "name": name,
            "kind": kind,
            "redirect_uris": redirect_uris,
            "scope": scope or [],
            "grant_types": grant_types or [],
        },
    )


@router.get("/{issuer}/admin/clients/{client_id}")
def client_page(call: PageCall, client_id: str) -> Response:
    return call.show(CLIENT, client_id=client_id)


@router.post("/{issuer}/admin/clients/{client_id}")
def update_client(
    call: FormCall,
    client_id: str,
    *,
    name: Annotated[str, Form(max_length=200)] = "",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    disabled: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        refuse_platform_client(call.rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=ctx.tenant,
            client=client,
            actor=ctx.admin.actor,
            name=name,
            redirect_uris=nonblank_lines(redirect_uris),
            scope=" ".join(scope or []),
            disabled=checked(disabled),
        )
        return Done(
            f"Client {client.name} saved.", f"/clients/{client.client_id}", clients_changed=True
        )

    return call.run(
        work,
        page=CLIENT,
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/rotate")
def rotate_client(call: FormCall, client_id: str, *, confirm: Flag = "") -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not checked(confirm):
            raise confirm_missing("Tick the box to confirm that the old secret stops working.")
        refuse_platform_client(call.rt.settings, client, "rotated")
        secret = service.rotate_client_secret(
            db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor
        )
        return Done(
            f"New secret issued for {client.name}; the old one no longer works.",
            f"/clients/{client.client_id}",
            secret={"client_id": client.client_id, "client_secret": secret},
            clients_changed=True,
        )

    return call.run(
        work,
        page=CLIENT,
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/delete")
def delete_client(call: FormCall, client_id: str, *, confirm: Flag = "") -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not checked(confirm):
            raise confirm_missing(f"Tick the box to confirm deleting {client.name}.")
        refuse_platform_client(call.rt.settings, client, "deleted")
        service.delete_client(db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor)
        return Done(f"Client {client.name} deleted.", "/clients", clients_changed=True)

    return call.run(
        work,
        page=CLIENT,
        params={"client_id": client_id},
    )
