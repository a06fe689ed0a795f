"""`printcloud demo`: the embedded stack, walked through (printcloud.demo)."""

from __future__ import annotations

from typing import Annotated

import typer

from printcloud.core.settings import Settings


def demo(
    keep_running: Annotated[bool, typer.Option(help="Keep serving after the demo")] = False,
) -> None:
    """Start the embedded stack and walk through the platform's flows."""
    from printcloud.demo import run_demo

    settings = Settings()
    if not settings.egress_allow:  # the demo's printers listen on this machine's loopback
        settings = settings.model_copy(update={"egress_allow": ["127.0.0.0/8", "::1"]})
    raise typer.Exit(run_demo(settings, keep_running=keep_running))
