"""A route class for the hot path: the body is validated by pydantic-core straight from
bytes, and the endpoint returns a ready Response.

FastAPI's generic request handling (dependency solving, JSON decoding in Python, then
validation, response serialisation, two exit stacks for dependencies with `yield`) costs
more per request than the model itself. This route serves endpoints of the form
`async def endpoint(request: Request, body: SomeModel) -> Response`: FastAPI still reads
the signature, so /openapi.json and /docs describe the body exactly, but a request runs
only the short function below. Errors raise the RequestValidationError and HTTPException
FastAPI would raise; the app's exception handlers answer them in the one error format.
A body with more unknown keys than an answer lists is refused before pydantic validates
it (api/errors.py says why), so bad input costs little whatever its shape.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, get_type_hints

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.errors import UnknownFieldScreen

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type in ("application/json", "") or media_type.endswith("+json")


class JsonBody:
    """Reads one body model from request bytes, raising what FastAPI would raise.

    The one definition of the checks, shared by JsonBodyRoute and the hot path
    (api/hot_path.py), so both refuse the same input with the same answer."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self._validate = model.model_validate_json
        self._screen = UnknownFieldScreen(model)

    @staticmethod
    def check_content_type(content_type: str) -> None:
        """HTTPException 415 unless the media type is JSON (or absent)."""
        if not _is_json(content_type):
            raise HTTPException(415, f"content-type must be application/json, not {content_type}")

    def decode(self, body: bytes) -> BaseModel:
        """The validated model; RequestValidationError (or its screened form) if not."""
        self._screen.check(body)
        try:
            return self._validate(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False), body=body) from None


class JsonBodyRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        handle = self.get_route_handler()

        # No per-route exception wrapping or exit stacks: these endpoints take no
        # dependencies, and exceptions reach the app's ExceptionMiddleware unchanged.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handle(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Handler:
        endpoint = self.endpoint
        hints = get_type_hints(endpoint)
        names = list(inspect.signature(endpoint).parameters)
        if len(names) != 2 or hints.get(names[0]) is not Request:
            raise TypeError(f"{endpoint.__name__} must take (request: Request, body: Model)")
        model = hints[names[1]]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{endpoint.__name__}'s body must be a pydantic model")
        parser = JsonBody(model)

        async def handle(request: Request) -> Response:
            parser.check_content_type(request.headers.get("content-type", ""))
            return await endpoint(request, parser.decode(await request.body()))

        return handle
