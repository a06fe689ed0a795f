"""Background work can run below the answers (as CUPS's `FilterNice` puts its filters below
cupsd): the threads that run workflows, and the conversion workers, take a higher nice
value (`PRINTCLOUD_BACKGROUND_NICE`; 0, the default, leaves them as they are).

Why: a job's workflow and conversion cost more CPU than answering its Print-Job (about
15 ms against 6 on this machine; bench/README.md, "Get-Printer-Attributes before HTTP
parsing, and background work's priority"). On a
busy core the next client's request waited behind the workflows of the jobs before it;
with this the kernel runs the request first and the workflows when the core is free.
Nothing is skipped or postponed by printcloud itself: an answered job is committed, and
its workflow runs as before, only at a lower priority. A core that is never free for
long runs them at the nice value's share (nice 10 is about a tenth of a nice-0 thread).

Off by default: measured on a loaded 2-core machine (bench/README.md), nice 10 took
Print-Job at one connection from 4.4-5.2 to 6.8-12.1 jobs/s, but at sixteen from
17.2-33.2 to 13.0-26.5 (a low-priority thread holding the GIL or SQLite's write lock
then delays the answers).

Linux keeps a nice value per thread (setpriority(2) on a thread id); elsewhere, or
where the call is refused, nothing changes and that is logged once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from printcloud.core.logs import get_logger

log = get_logger("core.tasks.priority")
_warned = threading.Event()


def lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value to `nice` (never lower it)."""
    if nice <= 0:
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (OSError, AttributeError) as exc:  # not Linux, or refused
        if not _warned.is_set():
            _warned.set()
            log.warning(
                "background work keeps its priority: setpriority failed",
                extra={"fields": {"nice": nice, "error": str(exc)}},
            )


def lower_threads(threads: Iterable[threading.Thread], nice: int) -> None:
    """Raise the nice value of these running threads (of this process) to `nice`."""
    lower_tids([t.native_id for t in threads if t.native_id is not None], nice)


def lower_this_process(nice: int) -> None:
    """Raise the nice value of every thread of this process to `nice` (the threads they
    start inherit it): for a process that does only background work."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [threading.get_native_id()]
    lower_tids(tids, nice)


def lower_tids(tids: Iterable[int], nice: int) -> None:
    if nice <= 0:
        return
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile
        except (OSError, AttributeError) as exc:
            log.warning(
                "background work keeps its priority: setpriority failed",
                extra={"fields": {"nice": nice, "error": str(exc)}},
            )
            return
