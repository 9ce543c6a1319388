"""The machine: what it is (CPU model, flags, cores, GPUs, native bf16; recorded with every measurement), and the
process settings made before TensorFlow starts (at the CLI and training entries, never at ``import heroes``)."""

import ctypes
import ctypes.util
import os
import platform
import re
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bfloat16 matrix arithmetic in hardware; elsewhere it is emulated
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


@cache
def _cpuinfo_text() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def cpuinfo_field(field: str) -> str | None:
    """The first ``field : value`` of /proc/cpuinfo (``model name``, ``cpu family``...), or None."""
    match = re.search(rf"^{re.escape(field)}\s*:\s*(.*)$", _cpuinfo_text(), re.MULTILINE)
    return match.group(1).strip() if match else None


def cpu_flags() -> set:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
    return set((cpuinfo_field("flags") or "").split())


def cpu_name() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def gpus() -> list:
    """Names of the GPUs TensorFlow sees."""
    import tensorflow

    return [device.name for device in tensorflow.config.list_physical_devices("GPU")]


def bf16_is_fast() -> bool:
    """True where bfloat16 matrix units exist (AVX-512 BF16 / AMX, or any GPU); elsewhere bf16 is emulated."""
    return bool(gpus()) or bool(cpu_flags() & set(BF16_FLAGS))


def describe() -> dict:
    """What the numbers ran on: CPU model and flags, usable cores, GPUs, bf16 support, load average."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = cpu_flags()
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "usable_cpus": usable, "gpus": gpus(),
            "bf16_native": bf16_is_fast(), "cpu_flags": {flag: flag in flags for flag in REPORTED_FLAGS},
            "platform": platform.platform(), "malloc": malloc_state(), "load_average": [round(value, 2) for value in os.getloadavg()]}


# Process settings: glibc malloc tuned so large CPU buffers are reused, TensorFlow's BFC pool, its start-up noise hidden.
M_TOP_PAD, M_MMAP_THRESHOLD = -2, -3  # mallopt parameters, from glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts: buffers up to 32 MiB come from the heap
TOP_PAD = 256 * 2**20  # heap grown and kept in 256 MiB steps, so freed buffers are not handed back at once
OPT_OUT = "HEROES_MALLOC"  # "default": leave malloc as it is

_state = {"tuned": False, "why": "not attempted"}


def tune_malloc() -> dict:
    """Raise glibc's mmap threshold and top pad (``mallopt``); return what was done and why.

    Why by hand: TensorFlow's generator datasets (every ``keras.utils.PyDataset``) set ``M_TRIM_THRESHOLD`` to 128 KiB,
    which also freezes glibc's mmap threshold at 128 KiB, so every activation, gradient and XLA temporary above it is
    a fresh ``mmap`` whose pages fault in and are zeroed at each step. Measured on a 2-core AVX-512 CPU, VGG16's
    fc1/fc2/output on 1,200 cached rows, 6 epochs with XLA: ~110 mmap/munmap calls per step, 14 s of system time,
    epochs swinging between 2.9 and 5.3 s; with these two settings 1 s of system time and 1.8-2.5 s per epoch.
    The TF_CPU_ALLOCATOR_USE_BFC pool set by ``prepare_process`` does not reach those buffers.
    Allocators that do this by design (jemalloc, tcmalloc) would need LD_PRELOAD before Python starts, which a
    notebook kernel or ``python -m heroes`` cannot rely on; ``mallopt`` can be called from here.
    """
    if os.environ.get(OPT_OUT, "").strip().lower() == "default":
        _state.update(tuned=False, why=f"{OPT_OUT}=default")
        return dict(_state)
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        _state.update(tuned=False, why="no glibc mallopt (not Linux/glibc)")
        return dict(_state)
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TOP_PAD, TOP_PAD) == 1
    _state.update(tuned=done, why=f"mmap threshold {MMAP_THRESHOLD // 2**20} MiB, top pad {TOP_PAD // 2**20} MiB"
                  if done else "mallopt refused the settings")
    return dict(_state)


def malloc_state() -> dict:
    """What ``tune_malloc`` did in this process (recorded with every measurement)."""
    return dict(_state)


def prepare_process() -> None:
    """Settings that only take effect before TensorFlow's first allocation; idempotent.

    TensorFlow's default CPU allocator maps fresh pages for every large tensor, so each SGD step on VGG16's fc1
    (100M floats) spent more time in page faults than in arithmetic; its BFC pool reuses memory: about half the CPU
    time per step (TF_CPU_ALLOCATOR_USE_BFC=false opts out). glibc then keeps the buffers TensorFlow allocates
    outside that pool (``tune_malloc``). TensorFlow's C++ INFO and WARNING lines (CUDA stubs, CPU feature guard, XLA
    notices) bury the training output a person reads; errors still show, and HEROES_VERBOSE=1 brings all back.
    """
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    if os.environ.get("HEROES_VERBOSE", "").strip() in ("", "0"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _state["why"] == "not attempted":
        tune_malloc()
