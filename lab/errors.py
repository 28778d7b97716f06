"""Errors a user can cause or fix, and how command-line entry points report them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from pydantic import ValidationError

from lab.core import ResourceError

P = ParamSpec("P")
R = TypeVar("R")


class LabError(Exception):
    """A failure with a message that says what is wrong and what to do."""


def one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "settings"
        given = error.get("input")
        # The value as the user typed it, when it is one (REPLICAS='abc').
        shown = f"{name}={given!r}" if isinstance(given, str | int | float) else name
        parts.append(f"{shown}: {error['msg']}")
    return "; ".join(parts)


def reports_errors(program: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn LabError, bad settings and Ctrl-C into one line on stderr and an exit code."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except LabError as exc:
                print(f"{program}: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
            except (ResourceError, ValidationError) as exc:
                message = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
                print(f"{program}: invalid setting: {message}", file=sys.stderr)
                raise SystemExit(2) from None
            except KeyboardInterrupt:
                print(f"{program}: interrupted", file=sys.stderr)
                raise SystemExit(130) from None

        return wrapper

    return decorate
