"""What the command groups share: the two consoles, the admin group's `--json` switch,
an admin command's database session, its output (a Rich table or JSON) and its errors
(a printcloud error is printed, or written as JSON, and exits with code 2)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from printcloud.core.errors import PrintcloudError
from printcloud.core.settings import Settings

T = TypeVar("T")
console = Console()
err = Console(stderr=True)


class State:
    json: bool = False
    issuer: str = "idp-a"


state = State()


@contextmanager
def session() -> Iterator[Any]:
    from printcloud.stack import prepare

    # An admin command runs beside a live server, maybe with another environment:
    # it migrates, but leaves the service clients as the server set them.
    db = prepare(Settings(), serving=False)
    try:
        with db.session() as db_session:
            yield db_session
    finally:
        db.dispose()


def emit(data: Any, table: Callable[[], Table] | None = None, message: str | None = None) -> None:
    if state.json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    elif table is not None:
        console.print(table())
    elif message:
        console.print(message)


def run(fn: Callable[[Any], Any]) -> Any:
    try:
        with session() as db_session:
            return fn(db_session)
    except PrintcloudError as exc:
        fail(exc)


def fail(exc: PrintcloudError) -> NoReturn:
    """Say `exc` (as JSON with `--json`) and exit with code 2."""
    if state.json:
        sys.stdout.write(json.dumps(exc.as_dict()) + "\n")
    else:
        err.print(f"[red]error[/red] {exc.error}: {exc.description}")
    raise typer.Exit(2) from exc


def in_tenant(issuer: str, tenant: str, work: Callable[[Any, Any], T]) -> T:
    """`run(work)` for one tenant: `work(session, tenant_row)`."""
    from printcloud.auth import service

    return run(lambda s: work(s, service.get_tenant(s, issuer=issuer, tenant_id=tenant)))


def fields_of(row: Any, names: str) -> dict[str, Any]:
    """The attributes of a database row named in `names` (space-separated, as for a
    namedtuple), as a command shows them."""
    return {name: getattr(row, name) for name in names.split()}


def rows_of(data: Iterable[Mapping[str, Any]], *keys: str) -> list[list[Any]]:
    """A table's rows: the values of `keys` in each of `data`, in order."""
    return [[d[key] for key in keys] for d in data]


def table_of(title: str, columns: list[str], rows: list[list[Any]]) -> Callable[[], Table]:
    def build() -> Table:
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(v) if v is not None else "" for v in r])
        return t

    return build


IssuerOpt = Annotated[str, typer.Option("--issuer", help="Issuer (authorization server) name")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant ID")]
