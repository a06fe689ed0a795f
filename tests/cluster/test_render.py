"""The nginx, HAProxy and systemd files rendered from a topology: valid for the real
programs (`nginx -t`, `haproxy -c`), the same as the shipped ones in `deploy/`, and
balancing as the issue asks (no stickiness, safe retries, health checks)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from printcloud.cluster.render import (
    HAPROXY_FILE,
    NGINX_FILE,
    render_haproxy,
    render_nginx,
    render_units,
    rendered_files,
    write_files,
)
from printcloud.cluster.topology import Topology
from tests.cluster.conftest import require_balancer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REGENERATE = "regenerate them with `printcloud deploy-files` (writes deploy/) and commit the result"


def nginx_check(conf: Path, prefix: Path, *, listen_on: str | None = None) -> None:
    """`nginx -t` on a config. nginx binds its listeners while testing, so a config for
    another machine's address is tested in a network namespace of its own that has
    that address, when this machine allows one; else its only failure may be the bind."""
    nginx = require_balancer("nginx")
    command = [nginx, "-t", "-p", str(prefix), "-c", str(conf)]
    if listen_on and os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        script = f'ip link set lo up && ip addr add {listen_on}/32 dev lo && exec "$@"'
        isolated = ["unshare", "--net", "sh", "-c", script, "sh", *command]
        done = subprocess.run(isolated, capture_output=True, text=True)
        if "unshare failed" not in done.stderr:
            assert done.returncode == 0, done.stderr
            return
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 and listen_on:
        assert "syntax is ok" in done.stderr, done.stderr
        emerg = [line for line in done.stderr.splitlines() if "[emerg]" in line]
        assert emerg and all(f"bind() to {listen_on}:" in line for line in emerg), done.stderr
        return
    assert done.returncode == 0, done.stderr


def haproxy_check(cfg: Path) -> None:
    haproxy = require_balancer("haproxy")
    done = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shipped_files_are_the_rendered_example() -> None:
    for name, text in rendered_files(Topology.example()).items():
        path = DEPLOY / name
        assert path.exists(), f"deploy/{name} is missing: {REGENERATE}"
        assert path.read_text() == text, f"deploy/{name} differs from its template: {REGENERATE}"
    generated = set(rendered_files(Topology.example()))
    for folder in ("nginx", "haproxy", "systemd/instances"):
        for path in (DEPLOY / folder).iterdir():
            name = path.relative_to(DEPLOY).as_posix()
            assert name in generated, f"deploy/{name} is not generated any more: delete it"


def test_write_files_writes_what_rendered_files_says(tmp_path: Path) -> None:
    written = write_files(Topology.example(), tmp_path)
    rendered = rendered_files(Topology.example())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(rendered)
    for path in written:
        assert path.read_text() == rendered[path.relative_to(tmp_path).as_posix()]


def test_the_example_passes_nginx_and_haproxy(tmp_path: Path) -> None:
    topo = Topology.example()
    nginx_check(DEPLOY / NGINX_FILE, tmp_path, listen_on=topo.host)
    haproxy_check(DEPLOY / HAPROXY_FILE)


@pytest.mark.parametrize("policy", ["round_robin", "least_conn"])
def test_a_local_topology_passes_nginx_and_haproxy(tmp_path: Path, policy: str) -> None:
    topo = Topology.local(policy=policy, convert_workers=3)  # type: ignore[arg-type]
    (tmp_path / "nginx-temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx(topo, run_dir=tmp_path))
    nginx_check(conf, tmp_path)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy(topo, run_dir=tmp_path))
    haproxy_check(cfg)
    # Everything either writes stays in the run directory.
    for path in re.findall(
        r"(?m)^\s*(?:pid|error_log|access_log|\w+_temp_path) (\S+);", conf.read_text()
    ):
        assert path.startswith(str(tmp_path)), path


def _block(text: str, start: str) -> str:
    """The `upstream`/`backend` block that starts with `start`."""
    rest = text[text.index(start) :]
    end = rest.find("}") if "{" in start else rest.find("\n\n")
    return rest if end < 0 else rest[:end]


def test_the_policy_switches_the_conversion_tier_only() -> None:
    rr = Topology.local(policy="round_robin")
    lc = Topology.local(policy="least_conn")
    assert "least_conn;" not in render_nginx(rr)
    assert "least_conn;" in _block(render_nginx(lc), "upstream printcloud_convert {")
    assert render_nginx(lc).count("least_conn;") == 1
    assert "balance roundrobin" in _block(render_haproxy(rr), "\nbackend printcloud_convert\n")
    assert "balance leastconn" in _block(render_haproxy(lc), "\nbackend printcloud_convert\n")
    assert render_haproxy(lc).count("balance leastconn") == 1


@pytest.mark.parametrize("policy", ["round_robin", "least_conn"])
def test_no_stickiness(policy: str) -> None:
    topo = Topology.example()
    nginx = render_nginx(Topology.local(policy=policy))  # type: ignore[arg-type]
    haproxy = render_haproxy(Topology.local(policy=policy))  # type: ignore[arg-type]
    for text in (nginx, render_nginx(topo)):
        directives = [line.split("#")[0] for line in text.splitlines()]
        for sticky in ("ip_hash", "hash ", "sticky"):
            assert not any(sticky in d for d in directives), sticky
    for text in (haproxy, render_haproxy(topo)):
        directives = [line.split("#")[0] for line in text.splitlines()]
        for sticky in ("cookie", "stick ", "stick-table", "balance source", "balance uri"):
            assert not any(sticky in d for d in directives), sticky


def test_retries_never_replay_a_post_that_reached_a_worker() -> None:
    topo = Topology.example()
    nginx = render_nginx(topo)
    directives = [line.split("#")[0].strip() for line in nginx.splitlines()]
    assert "proxy_next_upstream error timeout http_502 http_503;" in directives
    assert not any("non_idempotent" in d for d in directives)
    haproxy = render_haproxy(topo)
    assert "retries 2" in haproxy and "option redispatch 1" in haproxy
    assert "retry-on conn-failure empty-response 503" in haproxy
    # Beyond a failed connection, only methods safe to repeat are retried, at both doors.
    assert haproxy.count("acl replayable method GET HEAD OPTIONS PUT DELETE") == 2
    assert haproxy.count("http-request disable-l7-retry unless replayable") == 2


def test_health_checks_and_routes() -> None:
    topo = Topology.example()
    haproxy = render_haproxy(topo)
    assert "option httpchk GET /healthz" in _block(haproxy, "\nbackend printcloud_convert\n")
    assert "option httpchk GET /printing/healthz" in _block(
        haproxy, "\nbackend printcloud_printing\n"
    )
    assert "default-server check" in haproxy
    for name in ("printing", "crm", "docgen"):
        assert f"use_backend printcloud_{name} if {{ path /{name} }}" in haproxy
    assert "default_backend printcloud_auth" in haproxy
    nginx = render_nginx(topo)
    assert nginx.count("max_fails=2 fail_timeout=10s") == len(topo.backends)
    assert "client_max_body_size 201m;" in nginx and "proxy_read_timeout 300s;" in nginx
    for name in ("printing", "crm", "docgen"):
        assert f"location /{name}/ {{\n            proxy_pass http://printcloud_{name};" in nginx
    assert "location / {\n            proxy_pass http://printcloud_auth;" in nginx
    # Keepalive to the upstreams.
    assert nginx.count("keepalive 16;") == 5 and 'proxy_set_header Connection "";' in nginx


def test_one_systemd_instance_per_process() -> None:
    topo = Topology.example()
    units = render_units(topo)
    assert "ExecStart=/opt/printcloud/bin/printcloud serve" in units["printcloud@.service"]
    assert "EnvironmentFile=/etc/printcloud/instances/%i.env" in units["printcloud@.service"]
    for backend in topo.backends:
        env = units[f"instances/{backend.name}.env"]
        assert f"PRINTCLOUD_SERVICE={backend.service}\n" in env
        assert f"PRINTCLOUD_WORKER_ID={backend.name}\n" in env
        assert f"PRINTCLOUD_PORT={backend.port}\n" in env
        assert ("PRINTCLOUD_CONVERT_URLS=" in env) == (backend.service == "printing")
    assert "PRINTCLOUD_DISTRIBUTED=1" in units["distributed.env.example"]


def test_topology_checks() -> None:
    topo = Topology.local(convert_workers=3, printing=2)
    assert [b.name for b in topo.convert] == ["convert-1", "convert-2", "convert-3"]
    assert [b.name for b in topo.printing] == ["printing-1", "printing-2"]
    ports = [topo.entry_port, topo.convert_port, *(b.port for b in topo.backends)]
    assert len(set(ports)) == len(ports)
    with pytest.raises(ValueError, match="policy"):
        Topology.local(policy="sticky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="convert"):
        Topology.local(convert_workers=0)
