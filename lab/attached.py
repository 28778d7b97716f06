"""Programs the lab runs in the foreground, attached to the terminal (logs, Locust).

Ctrl-C reaches such a child too (same process group): it then stops what it attached to
and exits on its own, so it is waited for rather than abandoned half-way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.errors import LabError


def run_attached(
    argv: Sequence[str],
    missing: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run `argv` attached to the terminal, with `env` as its whole environment (this
    process's when None); its exit code. LabError(`missing`) when the program is absent."""
    try:
        process = subprocess.Popen(list(argv), env=env, cwd=cwd)
    except FileNotFoundError:
        raise LabError(missing) from None
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue
