"""Worker processes that never outlive Ctrl-C or SIGTERM: the parent decides and ends them, none holds a pipe."""

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from heroes.errors import UserError

INTERRUPTS = {signal.SIGINT, signal.SIGTERM}  # Ctrl-C; timeout, CI, docker stop


def ordered_map(function, items, workers: int, context, chunksize: int = 1, initializer=None):
    """Yield ``function(item)`` for every item, in order, computed in ``workers`` forked processes.

    Ctrl-C goes to the whole process group: the workers ignore it and the parent, on that or any other exception
    (or when the consumer stops early), kills them before it propagates, so nothing is left blocked on a pipe.
    A worker that dies (killed for memory, a crash in a decoder) is a one-line ``UserError``.
    """
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(initializer,)) as pool:
        try:
            with interrupts_held():  # forked now, the workers start with both signals held (see _worker_start)
                results = pool.map(function, items, chunksize=chunksize)
            yield from results
        except BrokenProcessPool:
            raise UserError("a worker process died (killed for memory, or a crash in an image decoder); "
                            "nothing was written") from None
        except BaseException:
            _stop(pool)
            raise


@contextmanager
def interrupts_held():
    """Within the block SIGINT and SIGTERM wait (blocked, not lost); they are delivered when the block ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


def _worker_start(initializer) -> None:
    """In each worker: ignore Ctrl-C (the parent decides), die at SIGTERM (the parent's handler, inherited, would
    only raise in the task and the worker would go on), and write nowhere the parent's readers wait on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # `scan ... | tee log` ends when the parent ends, whatever a worker still does
    os.dup2(devnull, 2)
    os.close(devnull)
    if initializer is not None:
        initializer()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the workers now (Python 3.14's ``terminate_workers``, the same by hand before) and let the pool close."""
    with interrupts_held():  # a second Ctrl-C waits until the workers are gone
        terminate = getattr(pool, "terminate_workers", None)
        if terminate is not None:
            terminate()
        else:
            for process in list((pool._processes or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def fork_context():
    """The fork context when forking is safe, else None (scan serially).

    fork is cheap and needs no ``__main__`` guard, but forking a process with running
    threads (Jupyter, TensorFlow) can deadlock; spawn would re-run unguarded scripts.
    """
    threaded = threading.active_count() > 1 or "tensorflow" in sys.modules
    if threaded or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")
