"""D-Bus and avahi-daemon for `ippeveprinter`, which cannot start without DNS-SD.

They are system daemons, shared by every test and benchmark of the machine: started
when not running and left running. "Not running" is decided by what answers, not by
what files exist: a machine whose processes were stopped (a container restarted, a CI
run on a session's machine) keeps `/run/dbus/pid`, `/run/dbus/system_bus_socket` and
`/run/avahi-daemon/pid`, and a daemon killed without a parent to reap it stays a
zombie whose pid still "exists". Each stale file is removed before the start, because
both daemons refuse to start over their own pid file.

Standard library only, so that `bench/` can use it without pytest.
"""

from __future__ import annotations

import fcntl
import socket
import subprocess
import tempfile
from pathlib import Path

DBUS_RUN = Path("/run/dbus")
DBUS_SOCKET = DBUS_RUN / "system_bus_socket"
DBUS_PID = DBUS_RUN / "pid"
AVAHI_PID = Path("/run/avahi-daemon/pid")
_LOCK = Path(tempfile.gettempdir()) / "printcloud-mdns.lock"


class MdnsStartError(RuntimeError):
    """D-Bus or avahi-daemon would not start; the message carries what it printed."""


def process_alive(pid_file: Path, name: str) -> bool:
    """True when the pid in `pid_file` is a live process called `name` (not missing, not a
    zombie, and not another program that was given the stale file's pid since)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and comm.startswith(name[:15])


def bus_answers(path: Path = DBUS_SOCKET) -> bool:
    """True when something accepts connections on the system bus socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(10)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _start(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        printed = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise MdnsStartError(f"{what} did not start (exit {done.returncode}): {printed}")


def ensure_mdns(dbus_daemon: str = "dbus-daemon", avahi_daemon: str = "avahi-daemon") -> None:
    """Start the system bus and avahi-daemon unless they already run.

    A file lock keeps two test workers from starting them at the same moment (the
    second start would fail on the first one's pid file)."""
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not bus_answers():
            DBUS_RUN.mkdir(parents=True, exist_ok=True)
            DBUS_PID.unlink(missing_ok=True)
            DBUS_SOCKET.unlink(missing_ok=True)
            _start([dbus_daemon, "--system", "--fork"], "dbus-daemon")
        if not process_alive(AVAHI_PID, "avahi-daemon"):
            AVAHI_PID.unlink(missing_ok=True)
            _start([avahi_daemon, "-D", "--no-drop-root", "--no-chroot"], "avahi-daemon")
