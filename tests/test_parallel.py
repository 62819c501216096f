"""Worker processes: where hiericd may start them."""

import multiprocessing

from hiericd_core.parallel import may_start_workers, usable_cpus


def _report_workers(queue) -> None:
    queue.put((may_start_workers(), usable_cpus()))


def test_a_daemonic_process_uses_one_cpu_and_starts_no_workers():
    """Celery's prefork children are daemonic: multiprocessing refuses them children."""
    assert may_start_workers() and usable_cpus() >= 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_report_workers, args=(queue,), daemon=True)
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == (False, 1)
