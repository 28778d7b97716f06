"""Error answers for people: a 4xx naming the offending field, always valid JSON, always small.

Pydantic's error entries may hold the offending input, and JSON cannot carry NaN or
Infinity (nor can the encoder write integers beyond 64 bits): such values are echoed as
strings, so a 422 can never turn into a 500 while it is being encoded.

Bad input must cost little, whatever its shape. With `extra="forbid"` pydantic reports
every unknown key as its own error carrying its input: a 256 KB body of unknown keys
cost a replica ~95 ms of its only event loop and came back as a 2.6 MB answer. Now
(measured by tests/api/test_input_cost.py):
- a 422 lists at most MAX_ERRORS entries in `detail`, and `errors_omitted` counts the
  ones left out;
- every echoed part is clipped: strings and keys to MAX_ECHO_CHARS characters, each
  entry's `input` to about ECHO_BUDGET characters however deeply it nests, so an answer
  stays within a few kilobytes;
- UnknownFieldScreen finds unknown keys before pydantic sees the body, and only when the
  body holds more keys than a valid one can. A body with more than MAX_ERRORS unknown keys
  is refused on those alone, at the cost of one JSON parse (the 256 KB body: ~3 ms, a
  2.4 KB answer); a body that passes the screen makes pydantic report at most as many
  errors as the largest valid body has values, plus MAX_ERRORS.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, get_args, get_origin

import annotated_types
import orjson
import pydantic_core
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.batcher import BatchFailedError

log = logging.getLogger("api.errors")

# Entries in a 422's `detail`; `errors_omitted` counts the others.
MAX_ERRORS = 20
# Characters echoed of any string: an input, a key, a part of a field's path.
MAX_ECHO_CHARS = 64
# Characters, roughly as encoded, echoed of one entry's input, however it nests.
ECHO_BUDGET = 160
# Characters of a message: pydantic's are short, but some quote context values.
MAX_MESSAGE_CHARS = 200
# Containers nested deeper than this are echoed as a clipped repr.
MAX_ECHO_DEPTH = 3
ELLIPSIS = "…"


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


_INT64 = range(-(2**63), 2**63)


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def _echo(value: Any, budget: int, depth: int = 0) -> tuple[Any, int]:
    """`value` made JSON-safe and clipped to about `budget` characters; returns it with
    the characters it takes. Containers stop at the first item that no longer fits, and
    are never copied whole: a dict of 100,000 keys costs as little as one of three."""
    if value is None or isinstance(value, bool):
        return value, 5
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value), len(str(value)) + 2
        return value, len(repr(value))
    if isinstance(value, int):
        text = str(value)
        # JSON allows any integer, but the encoder (and many clients) stop at 64 bits.
        if value not in _INT64:
            text = _clip(text, min(MAX_ECHO_CHARS, max(budget - 2, 8)))
            return text, len(text) + 2
        return value, len(text)
    if isinstance(value, bytes):
        value = value[: MAX_ECHO_CHARS * 4].decode("utf-8", "replace")
    if isinstance(value, str):
        text = _clip(value, min(MAX_ECHO_CHARS, max(budget - 2, 8)))
        return text, len(text) + 2
    if depth >= MAX_ECHO_DEPTH or not isinstance(value, (Mapping, list, tuple)):
        text = _clip(repr(value), min(MAX_ECHO_CHARS, max(budget - 2, 8)))
        return text, len(text) + 2
    used = 2
    if isinstance(value, Mapping):
        mapping: dict[str, Any] = {}
        for key, item in value.items():
            name = _clip(str(key))
            left = budget - used - len(name) - 4
            if left <= 0:
                break
            mapping[name], size = _echo(item, left, depth + 1)
            used += len(name) + 4 + size
        return mapping, used
    items: list[Any] = []
    for item in value:
        left = budget - used - 1
        if left <= 0:
            break
        echoed, size = _echo(item, left, depth + 1)
        items.append(echoed)
        used += size + 1
    return items, used


def _json_safe(value: Any) -> Any:
    """The echo of one error's input: JSON-safe and at most about ECHO_BUDGET characters."""
    return _echo(value, ECHO_BUDGET)[0]


def _loc_part(part: Any) -> str | int:
    return part if isinstance(part, int) else _clip(str(part))


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first MAX_ERRORS pydantic errors as {field, loc, msg, type, input}, each part
    clipped, the input JSON-safe."""
    described = []
    for error in islice(errors, MAX_ERRORS):
        loc = [_loc_part(part) for part in error.get("loc", ()) if part != "body"]
        entry = {
            "field": ".".join(str(part) for part in loc) or "body",
            "loc": ["body", *loc],
            "msg": _clip(str(error.get("msg", "invalid value")), MAX_MESSAGE_CHARS),
            "type": _clip(str(error.get("type", "value_error"))),
        }
        if error.get("type") not in ("missing", "json_invalid") and "input" in error:
            entry["input"] = _json_safe(error["input"])
        described.append(entry)
    return described


class ScreenedValidationError(RequestValidationError):
    """Refused by UnknownFieldScreen: `errors()` holds the first unknown keys only, and
    `omitted` counts the unknown keys found beyond them."""

    def __init__(self, errors: Sequence[Any], *, omitted: int, body: Any = None) -> None:
        super().__init__(errors, body=body)
        self.omitted = omitted


@dataclass(frozen=True)
class _Shape:
    """Where a body may hold keys: the fields of a model, and which of them hold models
    or lists of models in turn. Other fields are leaves, judged by pydantic alone."""

    fields: frozenset[str]
    children: dict[str, _Shape | _ListShape] = field(default_factory=dict)


@dataclass(frozen=True)
class _ListShape:
    item: _Shape
    # None when the list is unbounded.
    max_length: int | None


def _shape_of(model: type[BaseModel]) -> _Shape:
    children: dict[str, _Shape | _ListShape] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            children[key] = _shape_of(annotation)
        elif get_origin(annotation) is list:
            (item,) = get_args(annotation) or (Any,)
            if isinstance(item, type) and issubclass(item, BaseModel):
                bounds = [
                    m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)
                ]
                children[key] = _ListShape(_shape_of(item), min(bounds) if bounds else None)
    fields = frozenset(info.alias or name for name, info in model.model_fields.items())
    return _Shape(fields, children)


def _max_keys(shape: _Shape | _ListShape) -> float:
    """Keys in the largest body that fits the shape (infinite when a list is unbounded)."""
    if isinstance(shape, _ListShape):
        if shape.max_length is None:
            return math.inf
        return shape.max_length * _max_keys(shape.item)
    return len(shape.fields) + sum(_max_keys(child) for child in shape.children.values())


class UnknownFieldScreen:
    """Refuses a body with more than MAX_ERRORS unknown keys before pydantic validates it.

    Pydantic would report each unknown key as an error of its own, at ~6 us each once
    described (a 256 KB body holds ~16,000). Counting colons costs nothing and bounds the
    keys a body can hold; only a body with more keys than a valid one can have is parsed
    (the same parser pydantic uses, so NaN and huge integers parse alike) and walked along
    the model's shape. Valid requests never pay more than the count.
    """

    _MESSAGE = "Extra inputs are not permitted"

    def __init__(self, model: type[BaseModel]) -> None:
        self._shape = _shape_of(model)
        self._max_keys = _max_keys(self._shape)

    def check(self, body: bytes) -> None:
        """Raise ScreenedValidationError when the body has more than MAX_ERRORS unknown keys."""
        if body.count(b":") <= self._max_keys:
            return
        try:
            # Unique keys gain nothing from pydantic's string cache, which costs ~30 %.
            value = pydantic_core.from_json(body, allow_inf_nan=True, cache_strings=False)
        except ValueError:
            # Not JSON: pydantic reports that as one error, cheaply.
            return
        found: list[dict[str, Any]] = []
        total = self._walk(value, self._shape, (), found)
        if total > MAX_ERRORS:
            raise ScreenedValidationError(found, omitted=total - len(found), body=body)

    def _walk(
        self,
        value: Any,
        shape: _Shape | _ListShape,
        loc: tuple[str | int, ...],
        found: list[dict[str, Any]],
    ) -> int:
        """Count the unknown keys in `value`, keeping the first MAX_ERRORS as errors in
        pydantic's form (a model's own keys before its children's). Goes only where
        pydantic would look: into dicts at a model's place and into lists short enough
        for pydantic to validate their items."""
        if isinstance(shape, _ListShape):
            if not isinstance(value, list) or (
                shape.max_length is not None and len(value) > shape.max_length
            ):
                return 0
            return sum(
                self._walk(item, shape.item, (*loc, index), found)
                for index, item in enumerate(value)
            )
        if not isinstance(value, dict):
            return 0
        # Counted by a set difference: ~20 times cheaper per key than a Python loop.
        unknown = value.keys() - shape.fields
        if unknown and len(found) < MAX_ERRORS:
            for key, item in value.items():
                if key in unknown:
                    error = {"type": "extra_forbidden", "loc": (*loc, key), "input": item}
                    found.append({**error, "msg": self._MESSAGE})
                    if len(found) == MAX_ERRORS:
                        break
        count = len(unknown)
        for key, child in shape.children.items():
            if key in value:
                count += self._walk(value[key], child, (*loc, key), found)
        return count


def validation_error_body(exc: RequestValidationError) -> bytes:
    """The 422 body: the first MAX_ERRORS errors described, and how many were left out.
    The one definition for FastAPI's handler and the hot path (api/hot_path.py)."""
    errors = exc.errors()
    detail = describe_errors(errors)
    omitted = len(errors) - len(detail)
    if isinstance(exc, ScreenedValidationError):
        omitted += exc.omitted
    return orjson.dumps({"error": "validation_error", "detail": detail, "errors_omitted": omitted})


def http_error_body(status: int, detail: Any) -> bytes:
    return orjson.dumps({"error": _slug(status), "detail": detail})


def batch_failed_body(exc: BatchFailedError) -> bytes:
    log.error("prediction failed: %s", exc)
    return orjson.dumps({"error": "inference_failed", "detail": str(exc)})


def _json_bytes(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    return _json_bytes(422, validation_error_body(exc))


async def _http_error(_: Request, exc: HTTPException) -> Response:
    return _json_bytes(
        exc.status_code, http_error_body(exc.status_code, exc.detail), headers=exc.headers
    )


async def _batch_failed(_: Request, exc: BatchFailedError) -> Response:
    return _json_bytes(503, batch_failed_body(exc))


def _slug(status: int) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
        503: "unavailable",
    }.get(status, f"http_{status}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BatchFailedError, _batch_failed)
