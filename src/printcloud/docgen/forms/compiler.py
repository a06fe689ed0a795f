"""Typst compilers in a private, empty project root, with embedded fonts only, and
the compiler's errors turned into `FormError`s that name only what a tenant knows.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import typst

from ..sandbox import package_import
from .model import FormError

_MAIN_FILE = re.compile(r"[^\s\"']*__typst_py_bytes__\.typ")
_LOCATION = re.compile(r"template\.typ:(\d+):(\d+)")


# -- the compiler sandbox ----------------------------------------------------


class _Sandbox:
    """Private directories for the compilers of this process: an empty project root
    (what `read()` and friends see) and package folders outside it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="printcloud-typst-"))
        self.root = self.base / "root"
        self.packages = self.base / "packages"
        self.cache = self.base / "package-cache"
        for path in (self.root, self.packages, self.cache):
            path.mkdir(mode=0o700)
        atexit.register(shutil.rmtree, self.base, ignore_errors=True)


_sandbox_lock = threading.Lock()
_sandbox: _Sandbox | None = None


def get_sandbox() -> _Sandbox:
    global _sandbox  # noqa: PLW0603 - one sandbox per process, made on first use
    with _sandbox_lock:
        if _sandbox is None or not _sandbox.root.is_dir():
            _sandbox = _Sandbox()
        return _sandbox


@cache
def embedded_fonts() -> typst.Fonts:
    # Embedded fonts only: the same output on every machine, no system font scan.
    return typst.Fonts(include_system_fonts=False, include_embedded_fonts=True)


def new_compiler() -> typst.Compiler:
    sandbox = get_sandbox()
    return typst.Compiler(
        root=str(sandbox.root),
        font_paths=embedded_fonts(),
        ignore_system_fonts=True,
        package_path=str(sandbox.packages),
        package_cache_path=str(sandbox.cache),
    )


def clean(text: str, root: str | None = None) -> str:
    """The compiler's text with our private paths replaced by what the tenant knows."""
    text = _MAIN_FILE.sub("template.typ", text)
    if root:
        text = text.replace(root.rstrip("/"), "")
    # The compiler's hint about its command line means nothing to a tenant.
    return "\n".join(line for line in text.splitlines() if "--root" not in line).strip()


def form_error(
    message: str, diagnostic: str, hints: list[str], root: str | None, *, prefix: str
) -> FormError:
    package = package_import(message)
    if package is not None:  # the compiler's own word: the form asked for a package
        diagnostic = clean(diagnostic or message, root)
        location = _LOCATION.search(diagnostic)
        line, column = (int(location[1]), int(location[2])) if location else (None, None)
        where = f" (line {line}, column {column})" if location else ""
        text = f"forms cannot import packages ({package}){where}; put what you need in the form"
        return FormError(
            text, message=f"forms cannot import packages ({package})", line=line, column=column
        )
    diagnostic = clean(diagnostic or message, root)
    message = clean(message, root)
    location = _LOCATION.search(diagnostic)
    line, column = (int(location[1]), int(location[2])) if location else (None, None)
    where = f" (line {line}, column {column})" if location else ""
    text = f"{prefix}: {message}{where}\n{diagnostic}"
    if hints and "hint:" not in diagnostic:
        text += "\n" + "\n".join(f"hint: {hint}" for hint in hints)
    return FormError(text, message=message, line=line, column=column)


def child_error(result: Mapping[str, Any], *, prefix: str) -> FormError:
    """The `FormError` of a compile that failed in a child process (`sandbox.py`'s answer)."""
    return form_error(
        str(result.get("message", "")),
        str(result.get("diagnostic", "")),
        [str(hint) for hint in result.get("hints", [])],
        str(result.get("root", "")),
        prefix=prefix,
    )
