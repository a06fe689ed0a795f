"""The `printcloud` command: serve, cluster, deploy-files, demo, device, admin, version.

One module per command group; this one builds the Typer app from them:

- `serve.py`    `printcloud serve` (embedded, or one service)
- `cluster.py`  `printcloud cluster` (the distributed run on loopback), `deploy-files`
- `demo.py`     `printcloud demo`
- `device.py`   `printcloud device` (a virtual printer, seed 003 PRT001; cards, seed 004)
- `admin/`      `printcloud admin …`, one module per sub-group
- `common.py`   what they share: consoles, `--json`, the admin session, tables, errors
"""

from __future__ import annotations

import sys

import typer

from printcloud import __version__
from printcloud.cli import cluster, demo, device, serve
from printcloud.cli.admin import admin
from printcloud.cli.common import console

app = typer.Typer(
    help="printcloud: multi-tenant cloud printing.", no_args_is_help=True, add_completion=False
)


def arguments(args: list[str]) -> list[str]:
    """The command line as click expects it: `--json` belongs to the admin group but may
    be written after any admin command (`printcloud admin tenant list --json`)."""
    if args[:1] == ["admin"] and "--json" in args[1:]:
        return ["admin", "--json", *[a for a in args[1:] if a != "--json"]]
    return args


def main() -> None:
    app(args=arguments(sys.argv[1:]), prog_name="printcloud")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"printcloud {__version__}")


# The order here is the order `printcloud --help` lists them in.
app.command()(serve.serve)
app.command()(cluster.cluster)
app.command("deploy-files")(cluster.deploy_files)
app.command()(demo.demo)
app.command()(device.device)
app.add_typer(admin, name="admin")

__all__ = ["app", "arguments", "main"]
