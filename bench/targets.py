"""Minimal servers used as fixed points by the benchmarks (started by bench scripts)."""

from __future__ import annotations

ANSWER = (
    b'{"species":"Adelie","probabilities":{"Adelie":1.0,"Chinstrap":0.0,"Gentoo":0.0},'
    b'"model_version":"fixed"}'
)


async def bare_asgi(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """The fastest answer Python can give over uvicorn: no framework at all."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})
