"""Clocks of the benchmark: CPU seconds, a stopwatch, steady epoch times and the ``Monitor`` sampling RSS and load."""

import os
import resource
import threading
import time
from contextlib import contextmanager
from datetime import datetime

import numpy
import psutil

MIB = 2**20


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Monitor:
    """Samples this process's RSS and the 1-minute load average in a thread; ``phase`` records one measurement."""

    def __init__(self, interval: float, verbose: bool = True):
        self.process, self.interval, self.verbose = psutil.Process(), interval, verbose
        self.peak, self.loads, self.all_loads = 0, [], []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        rss, load = self.process.memory_info().rss, os.getloadavg()[0]
        with self._lock:
            self.peak = max(self.peak, rss)
            self.loads.append(load)
            self.all_loads.append(load)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @contextmanager
    def phase(self, name: str):
        """Yield a dict filled, on exit, with wall/CPU seconds, RSS at start and peak, and the load average."""
        with self._lock:
            self.peak, self.loads = self.process.memory_info().rss, []
        rss_start, load_start = self.process.memory_info().rss, os.getloadavg()[0]
        if self.verbose:
            print(f"[{datetime.now():%H:%M:%S}] {name} ... (load {load_start:.2f})", flush=True)
        record = {}
        wall, cpu = time.perf_counter(), cpu_seconds()
        yield record
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        self._sample()
        with self._lock:
            peak, loads = self.peak, list(self.loads)
        record["resources"] = {
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_per_wall": round(cpu / wall, 2) if wall else None,
            "rss_start_mib": round(rss_start / MIB, 1), "peak_rss_mib": round(peak / MIB, 1),
            "load_1min_start": round(load_start, 2), "load_1min_mean": round(float(numpy.mean(loads)), 2),
            "load_1min_max": round(float(numpy.max(loads)), 2),
        }
        if self.verbose:
            print(f"[{datetime.now():%H:%M:%S}] {name}: {wall:.0f} s wall, {cpu:.0f} s CPU, "
                  f"peak RSS {peak / MIB:.0f} MiB, load {numpy.mean(loads):.2f}", flush=True)


@contextmanager
def clock():
    """Yield a dict whose ``s`` is, on exit, the wall seconds the block took."""
    record = {}
    start = time.perf_counter()
    yield record
    record["s"] = time.perf_counter() - start


def steady(values) -> float:
    """Mean of the epochs after the first (which also traces the step functions), or the only one."""
    values = list(values)
    return float(numpy.mean(values[1:] if len(values) > 1 else values))
