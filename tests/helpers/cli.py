"""The `printcloud` command run in this process (Typer's CliRunner) with the environment
a subprocess would get, answered as a `CompletedProcess`: the same command, arguments,
settings and exit code, without a new interpreter per call (about 3 s of CPU each).
tests/test_cli.py keeps calls through the real entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import traceback
from collections.abc import Mapping

from typer.testing import CliRunner

from printcloud.cli import app, arguments
from printcloud.cli.common import console, err


def run_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`printcloud ARGS` with exactly `env` as its environment (what is not in it is unset
    for the call; Settings reads it afresh, as a new process would)."""
    overlay: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overlay.update(env)
    # The CLI's Rich consoles are made once per process, so they would keep the width of
    # the first call: give them this call's COLUMNS as a new process would read it.
    widths = (console.width, err.width)
    columns = env.get("COLUMNS", "")
    if columns.isdigit():
        console.width = err.width = int(columns)
    try:
        result = CliRunner().invoke(app, arguments(list(args)), env=overlay, prog_name="printcloud")
    finally:
        console.width, err.width = widths
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # what the interpreter would have printed before exiting with status 1
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(
        ["printcloud", *args], result.exit_code, stdout=result.stdout, stderr=stderr
    )
