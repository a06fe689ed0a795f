"""Renders a `Topology` into the files that run it: nginx, HAProxy, systemd.

The shipped files in `deploy/` are `write_files(Topology.example(), "deploy")`
(`printcloud deploy-files`); a local cluster renders the same templates with a
run directory (`run_dir=`), where nginx and HAProxy keep everything they write,
so neither needs root or system paths. A test compares `deploy/` with a fresh
rendering, so the shipped files cannot drift from what the tests run.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from .topology import CONVERTED_ACCEL, Topology

#: Where each rendered file goes, under `deploy/` (systemd files: see `render_units`).
NGINX_FILE = "nginx/printcloud.conf"
HAPROXY_FILE = "haproxy/printcloud.cfg"
SYSTEMD_DIR = "systemd"

_env = Environment(
    loader=PackageLoader("printcloud.cluster", "templates"),
    autoescape=False,  # noqa: S701 - configuration files, not HTML
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _render(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def _local_user(run_dir: str | Path | None) -> str | None:
    """Who nginx's workers run as in a run directory: the cluster's own user when it
    is root (nginx would switch to `nobody`, who cannot reach a private run
    directory), else nobody is named (an unprivileged master cannot switch)."""
    if run_dir is None or os.geteuid() != 0:
        return None
    return pwd.getpwuid(os.geteuid()).pw_name


def render_nginx(
    topo: Topology, *, run_dir: str | Path | None = None, blob_root: str | Path | None = None
) -> str:
    """A complete nginx.conf: system paths, or everything under `run_dir`. `blob_root`:
    the services' blob store (`<PRINTCLOUD_DATA_DIR>/blobs`, default under the topology's
    state folder), whose `converted/` folder nginx serves after the print service's
    token check (X-Accel-Redirect)."""
    if run_dir is None:
        paths: dict[str, str | None] = {
            "pid": "/run/nginx.pid",
            "error_log": "/var/log/nginx/error.log",
            "access_log": "/var/log/nginx/access.log",
            "temp": None,  # the distribution's compiled-in paths
        }
        user: str | None = "www-data"
    else:
        run = Path(run_dir)
        paths = {
            "pid": str(run / "nginx.pid"),
            "error_log": str(run / "nginx-error.log"),
            "access_log": str(run / "nginx-access.log"),
            "temp": str(run / "nginx-temp"),
        }
        user = _local_user(run_dir)
    blobs = str(blob_root) if blob_root is not None else f"{topo.state_dir}/blobs"
    return _render(
        "nginx.conf.j2",
        topo=topo,
        paths=paths,
        user=user,
        run_dir=run_dir,
        accel=CONVERTED_ACCEL,
        blob_root=blobs.rstrip("/"),
    )


def render_haproxy(topo: Topology, *, run_dir: str | Path | None = None) -> str:
    """A complete haproxy.cfg: system paths, or its stats socket under `run_dir`."""
    if run_dir is None:
        paths: dict[str, str | None] = {
            "chroot": "/var/lib/haproxy",
            "stats_socket": "/run/haproxy/admin.sock",
        }
        user: str | None = "haproxy"
    else:
        paths = {"chroot": None, "stats_socket": str(Path(run_dir) / "haproxy.sock")}
        user = None
    return _render("haproxy.cfg.j2", topo=topo, paths=paths, user=user, run_dir=run_dir)


def render_units(topo: Topology) -> dict[str, str]:
    """systemd: one templated unit, `printcloud@.service`, the settings every instance
    shares (`distributed.env.example`) and one `instances/NAME.env` per process
    (its service, worker id, address). Keys are paths relative to `systemd/`."""
    files = {
        "printcloud@.service": _render("printcloud@.service.j2", topo=topo),
        "distributed.env.example": _render("distributed.env.j2", topo=topo),
    }
    for backend in topo.backends:
        files[f"instances/{backend.name}.env"] = _render(
            "instance.env.j2", topo=topo, b=backend, accel=CONVERTED_ACCEL
        )
    return files


def rendered_files(topo: Topology) -> dict[str, str]:
    """Every generated file of `deploy/`, by its path relative to it."""
    files = {NGINX_FILE: render_nginx(topo), HAPROXY_FILE: render_haproxy(topo)}
    for name, text in render_units(topo).items():
        files[f"{SYSTEMD_DIR}/{name}"] = text
    return files


def write_files(topo: Topology, out_dir: str | Path) -> list[Path]:
    """Write `rendered_files(topo)` under `out_dir`; returns the paths written."""
    out = Path(out_dir)
    written = []
    for name, text in rendered_files(topo).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
