"""The admin pages' ID cards bound to users and their lockouts (seed 004)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import cards, service
from ..admin_api.cards import card_read, tenant_lockouts
from ..models import CardBinding
from ..runtime import Runtime
from .base import Ctx, Done, FormCall, Page, PageCall, row_pk

router = APIRouter()


def _cards(rt: Runtime, db: Session, ctx: Ctx, *, q: str = "", **_: str) -> dict[str, Any]:
    found = cards.list_bindings(db, tenant=ctx.tenant, text=q.strip() or None)
    # the device a card was registered at, by its name (its client ID is in the API)
    devices = {c.client_id: c.name for c in service.list_clients(db, tenant=ctx.tenant)}
    return {"cards": [card_read(b, ctx.tenant) for b in found], "q": q, "devices": devices}


def _card_lockouts(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {
        "lockouts": tenant_lockouts(rt, db, ctx.tenant),
        "allowed": rt.settings.card_failures_allowed,
        "window": rt.settings.card_lockout_seconds,
    }


CARDS = Page("admin/cards.html", "cards", "ID cards", _cards)
CARD_LOCKOUTS = Page("admin/card_lockouts.html", "card-lockouts", "Card lockouts", _card_lockouts)


@router.get("/{issuer}/admin/cards")
def cards_page(call: PageCall, q: Annotated[str, Query(max_length=128)] = "") -> Response:
    return call.show(CARDS, q=q)


@router.post("/{issuer}/admin/cards/{card_id}/delete")
def delete_card(call: FormCall, card_id: int) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        binding = db.get(CardBinding, row_pk(card_id, "card"))
        # cards.delete_binding refuses a card of another tenant: only then is `binding` named
        cards.delete_binding(db, tenant=ctx.tenant, binding_pk=card_id, actor=ctx.admin.actor)
        assert binding is not None
        return Done(
            f"Card {binding.hint} of {binding.user.username} deleted; "
            "it must be registered again before it signs anyone in.",
            "/cards",
        )

    return call.run(work, page=CARDS)


@router.get("/{issuer}/admin/card-lockouts")
def card_lockouts(call: PageCall) -> Response:
    return call.show(CARD_LOCKOUTS)
