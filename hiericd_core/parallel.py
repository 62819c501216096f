"""Worker processes: how many CPUs we may use and how to start workers safely."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.context import BaseContext


def usable_cpus() -> int:
    """The CPUs this process may run on (affinity-aware on Linux); 1 where it may not start workers."""
    if not may_start_workers():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def may_start_workers() -> bool:
    """Whether this process may start worker processes.

    A daemonic process may not (``multiprocessing`` refuses): a Celery worker's
    prefork children, where Airflow's CeleryExecutor runs hiericd's tasks.
    """
    return not multiprocessing.current_process().daemon


def context() -> BaseContext:
    """``fork`` while single-threaded (fast, needs no importable ``__main__``), else ``forkserver``.

    Forking a process that runs threads (torch, Airflow) can deadlock a child.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
