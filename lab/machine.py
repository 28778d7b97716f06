"""Facts about the machine a measurement ran on, for reports and benchmark files."""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any


def machine_facts(limits: str = "") -> dict[str, Any]:
    model = ""
    memory_gb: float | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "taskset": shutil.which("taskset") is not None,
        "limits": limits,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
