"""glibc malloc tuning: large buffers reused from the heap rather than mapped afresh (and faulted in) every time."""

import json
import os
import subprocess
import sys

import pytest

from heroes import machine

# In a fresh interpreter: the training entry's process settings (malloc tuned unless opted out), then set the 128 KiB trim threshold
# TensorFlow's generator datasets set, then allocate and free an 8 MiB buffer 50 times, counting page faults.
PROBE = """
import ctypes, json, resource
import numpy
from heroes import machine
machine.prepare_process()
ctypes.CDLL("libc.so.6").mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD, as tensorflow's generator_dataset_op does
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    buffer = numpy.ones(2**21, dtype="float32")  # 8 MiB
    del buffer
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, **machine.malloc_state()}))
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")


def probe(**env) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_malloc_reuses_large_buffers_instead_of_faulting_them_in_again():
    tuned, default = probe(), probe(**{machine.OPT_OUT: "default"})
    assert tuned["tuned"] and "32 MiB" in tuned["why"]
    assert not default["tuned"] and default["why"] == f"{machine.OPT_OUT}=default"
    assert default["faults"] > 50 * 100  # every 8 MiB buffer mapped and faulted in afresh (measured: ~25,800)
    assert tuned["faults"] < default["faults"] / 10  # the first one only (measured: ~500)


@glibc_only
def test_every_measurement_records_what_was_done_to_malloc():
    assert machine.describe()["malloc"] == machine.malloc_state()
    machine.prepare_process()
    assert machine.malloc_state()["tuned"]  # this process's training entry ran without opting out


def test_importing_heroes_changes_nothing_global():
    probe = ("import json, os; before = dict(os.environ); import heroes; from heroes import machine; "
             "print(json.dumps({'changed': sorted(set(os.environ.items()) ^ set(before.items())), "
             "**machine.malloc_state()}))")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_", "HEROES_"))}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env,
                          check=True)
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {"changed": [], "tuned": False, "why": "not attempted"}
