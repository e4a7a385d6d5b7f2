"""One line describing the machine and software a benchmark ran on."""

import os
import platform
import time
from pathlib import Path

import jax


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_details() -> str:
    """Family and model, vector width and per-core caches, as Linux reports them ('' elsewhere).

    Why: 'AMD EPYC, 2 cores' named two machines of this project whose timings differ by about
    2.3x (2026-11-28, a family 26 EPYC with AVX-512, against the earlier sessions' machine),
    and on which the best E-step chunk size differs."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        return ""
    flags = set(info.get("flags", "").split())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    parts = [f"family {info.get('cpu family', '?')} model {info.get('model', '?')}", vectors, *caches]
    return ", ".join(parts)


def describe(device: str | None = None, **versions) -> str:
    """CPU model, cores, JAX's device, Python and the given package versions, and today's date.

    ``device`` names the device instead of asking JAX, whose first call would start a backend
    in this process (on a GPU, one that takes most of its memory from the benchmark's children).
    """
    if device is None:
        first = jax.devices()[0]
        device = f"{first.platform} ({first.device_kind})"
    extra = "".join(f", {name} {version}" for name, version in versions.items())
    details = cpu_details()
    return (
        f"Machine: {cpu_model()}{f' ({details})' if details else ''}, {os.cpu_count()} cores; JAX device {device}. "
        f"Python {platform.python_version()}, jax {jax.__version__}{extra}. Run {time.strftime('%Y-%m-%d')}."
    )
