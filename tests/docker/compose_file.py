"""docker-compose.yaml as Compose reads it: YAML, then variable interpolation.

Interpolation follows the Compose specification: `$$` is a literal dollar; `$VAR` and
`${VAR}` substitute (empty when unset); `${VAR:-default}` / `${VAR-default}` fall back when
the variable is unset or empty / unset; `${VAR:?message}` / `${VAR?message}` refuse to go
on; `${VAR:+other}` / `${VAR+other}` substitute `other` when it is set (and non-empty).
Defaults may themselves contain interpolations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
# The environment of a test run: only the secret the file insists on.
TEST_ENV = {"GRAFANA_ADMIN_PASSWORD": "test-password-not-for-use"}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """What Compose reports for `${VAR:?message}` when VAR is missing."""


def _braced_end(text: str, start: int) -> int:
    """Index of the `}` closing the `${` that starts at `start`."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _substitute(expression: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(expression)
    if not match:
        raise InterpolationError(f"invalid interpolation ${{{expression}}}")
    name, rest = match.group(), expression[match.end() :]
    value = env.get(name)
    empty = not value
    if rest == "":
        return value or ""
    for operator, when_empty_too in ((":-", True), ("-", False)):
        if rest.startswith(operator):
            fallback = interpolate(rest[len(operator) :], env)
            return fallback if (empty if when_empty_too else value is None) else value or ""
    for operator, when_empty_too in ((":?", True), ("?", False)):
        if rest.startswith(operator):
            if empty if when_empty_too else value is None:
                raise InterpolationError(
                    f"required variable {name} is missing a value: {rest[len(operator) :]}"
                )
            return value or ""
    for operator, when_empty_too in ((":+", True), ("+", False)):
        if rest.startswith(operator):
            present = not empty if when_empty_too else value is not None
            return interpolate(rest[len(operator) :], env) if present else ""
    raise InterpolationError(f"invalid interpolation ${{{expression}}}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _braced_end(text, i)
            out.append(_substitute(text[i + 2 : end], env))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not the keys), as Compose does."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


_IMAGE = re.compile(
    r"(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@sha256:(?P<digest>[0-9a-f]{64}))?"
)


@dataclass(frozen=True)
class ImageRef:
    """An image reference, `name[:tag][@sha256:digest]`, as Docker reads it."""

    name: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        match = _IMAGE.fullmatch(reference)
        if not match:
            raise ValueError(f"not an image reference: {reference!r}")
        return cls(match["name"], match["tag"] or "", match["digest"] or "")

    @property
    def exact_version(self) -> bool:
        """A release tag (v3.5.1, 3.11.14-slim-bookworm), never `latest` or a bare major."""
        return re.match(r"v?\d+\.\d+\.\d+", self.tag) is not None


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose model with the file's defaults, as `docker compose config` sees it.

    Like `docker compose config`, labels written as a list of `key=value` items (so that
    a key can hold a variable) come out as a mapping.
    """
    model = interpolate_tree(raw_compose(), TEST_ENV if env is None else env)
    for service in model.get("services", {}).values():
        if isinstance(service.get("labels"), list):
            service["labels"] = dict(item.split("=", 1) for item in service["labels"])
    return model


def variables(text: str) -> set[str]:
    """Every variable name a text interpolates (defaults included)."""
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))
