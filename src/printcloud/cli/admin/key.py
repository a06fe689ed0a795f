"""`printcloud admin key`: the issuers' signing keys of JWT access tokens (RFC 9068)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import IssuerOpt, emit, rows_of, run, table_of
from printcloud.core.settings import Settings

key_cli = typer.Typer(help="Signing keys of JWT access tokens (RFC 9068).", no_args_is_help=True)


def key_dict(k: Any, now: Any) -> dict[str, Any]:
    from printcloud.auth import service

    return {
        "kid": k.kid,
        "alg": k.alg,
        "state": service.key_state(key=k, now=now),
        "created_at": k.created_at,
        "signs_from": k.not_before,
        "signs_until": k.retired_at,
        "published_until": k.publish_until,
    }


def _show(data: list[dict[str, Any]], title: str) -> None:
    emit(
        data,
        table_of(
            title,
            ["kid", "alg", "state", "signs from", "signs until", "published until"],
            rows_of(data, "kid", "alg", "state", "signs_from", "signs_until", "published_until"),
        ),
    )


@key_cli.command("list")
def key_list(issuer: IssuerOpt = "idp-a") -> None:
    """List an issuer's signing keys and their state."""
    from printcloud.auth import service
    from printcloud.core.db import utcnow

    data = run(lambda s: [key_dict(k, utcnow()) for k in service.list_keys(s, issuer=issuer)])
    _show(data, f"signing keys of {issuer}")


@key_cli.command("rotate")
def key_rotate(
    issuer: IssuerOpt = "idp-a",
    alg: Annotated[
        list[str] | None, typer.Option(help="EdDSA | ES256 (repeat); default: both")
    ] = None,
    publish_ahead: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seconds the new key is published before it signs "
            "(default PRINTCLOUD_JWT_KEY_PUBLISH_AHEAD, 600)",
        ),
    ] = None,
) -> None:
    """Publish new signing keys now; they sign after PUBLISH_AHEAD seconds, and the keys
    they replace stay published until the last token they signed has expired."""
    from printcloud.auth import service
    from printcloud.core import jws
    from printcloud.core.crypto import SecretBox
    from printcloud.core.db import utcnow

    settings = Settings()
    box = SecretBox(settings.instance_secrets)

    def work(s: Any) -> list[dict[str, Any]]:
        service.ensure_keys(s, issuer=issuer, box=box)
        service.rotate_keys(
            s,
            issuer=issuer,
            box=box,
            publish_ahead=(
                settings.jwt_key_publish_ahead if publish_ahead is None else publish_ahead
            ),
            token_ttl=settings.jwt_access_token_ttl,
            algs=tuple(alg) if alg else jws.ALGORITHMS,
        )
        s.flush()
        return [key_dict(k, utcnow()) for k in service.list_keys(s, issuer=issuer)]

    if issuer not in settings.issuers:
        raise typer.BadParameter(f"unknown issuer {issuer!r}", param_hint="--issuer")
    data = run(work)
    _show(data, f"signing keys of {issuer} after the rotation")
