"""What the machine is: CPU model, flags, cores, GPUs, native bf16; read in one place, recorded with every measurement."""

import os
import platform
import re
from functools import cache
from pathlib import Path

from heroes import allocator

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


def hardware() -> dict:
    """What the numbers ran on: CPU model and flags, usable cores, GPUs, bf16 support, load average."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = cpu_flags()
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "usable_cpus": usable, "gpus": gpus(),
            "bf16_native": bf16_is_fast(), "cpu_flags": {flag: flag in flags for flag in REPORTED_FLAGS},
            "platform": platform.platform(), "malloc": allocator.malloc_state(), "load_average": [round(value, 2) for value in os.getloadavg()]}
