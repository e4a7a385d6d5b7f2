"""One line describing the machine and software a benchmark ran on."""

import os
import platform
import time

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


def describe(device: str | None = None, **versions) -> str:
    """CPU model, cores, JAX's device, Python and the given package versions, and today's date.

    ``device`` names the device instead of asking JAX, whose first call would start a backend
    in this process (on a GPU, one that takes most of its memory from the benchmark's children).
    """
    if device is None:
        first = jax.devices()[0]
        device = f"{first.platform} ({first.device_kind})"
    extra = "".join(f", {name} {version}" for name, version in versions.items())
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; JAX device {device}. "
        f"Python {platform.python_version()}, jax {jax.__version__}{extra}. Run {time.strftime('%Y-%m-%d')}."
    )
