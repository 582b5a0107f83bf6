"""Request bodies read within limits, before any endpoint sees them: what no request may make the server do.

uvicorn and FastAPI read a body whole, however large, and parse it with Python's lenient JSON (NaN, any depth).
Every route here reads it through `LimitedRoute` instead:

- a body over `max_request_bytes` is answered 413 before it is read: at once when its Content-Length says so,
  else as soon as the bytes received pass the limit;
- the body must be one JSON object, nested at most `records.MAX_NESTING` levels, without NaN or Infinity
  (each would fail the answer after the work, as a 500), and no string in it longer than `max_text_chars`
  (413 naming the field);
- large bodies are parsed and checked on a worker thread, so the event loop keeps answering other requests.

An empty body or one that is not an object is a 400 naming the fields the endpoint needs.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..records import MAX_NESTING, json_problem
from .service import RequestError

# Bodies larger than this are parsed on a worker thread (a thread hop costs more than parsing a small one).
INLINE_PARSE_BYTES = 256 << 10


@dataclass(frozen=True)
class BodyLimits:
    """`serve`'s limits on what one request may send (`--max-request-bytes`, `--max-text-chars`)."""

    max_request_bytes: int
    max_text_chars: int


def _too_large(message: str, param: str | None = None) -> RequestError:
    return RequestError(message, param=param, status=413, type="request_too_large")


def body_model(endpoint: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model an endpoint reads its body into, if any."""
    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # an annotation that does not resolve: FastAPI would have refused the route already
        return None
    return next((hint for name, hint in hints.items() if name != "return" and isinstance(hint, type)
                 and issubclass(hint, BaseModel)), None)


def _required_fields(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [name for name, info in model.model_fields.items() if info.is_required()]


def _wants(model: type[BaseModel] | None) -> str:
    fields = _required_fields(model)
    if not fields:
        return "a JSON object"
    return "a JSON object with " + " and ".join(f"'{name}'" for name in fields)


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The body, or RequestError 413 as soon as its declared or received size passes `max_request_bytes`."""
    limit = limits.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(f"the request body is {int(declared):,} bytes, over this server's limit of {limit:,} "
                         "(--max-request-bytes)")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(f"the request body is over this server's limit of {limit:,} bytes "
                             "(--max-request-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(body: bytes, limits: BodyLimits, model: type[BaseModel] | None) -> dict[str, Any]:
    """The body as a JSON object, checked; RequestError (400, or 413 for a text over the limit) when it is not."""
    if not body.strip():
        fields = _required_fields(model)
        raise RequestError(f"the request body is empty: send {_wants(model)}", param=fields[0] if fields else None)
    try:
        document = json.loads(body)
    except RecursionError:
        raise RequestError(f"the body is nested too deeply to read (up to {MAX_NESTING} levels are accepted)") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not valid UTF-8 (byte {exc.start + 1})") from None
    if not isinstance(document, dict):
        kind = "an array" if isinstance(document, list) else "null" if document is None else type(document).__name__
        raise RequestError(f"the request body must be {_wants(model)}, not {kind}")
    problem = json_problem(document, max_text_chars=limits.max_text_chars, numbers=True)
    if problem is not None:
        where = problem.where()
        if problem.kind == "text":
            raise _too_large(f"{where} is {problem.length:,} characters, over this server's limit of "
                             f"{limits.max_text_chars:,} (--max-text-chars)", param=where)
        raise RequestError(f"{where} {problem.describe()}", param=where)
    return document


class CheckedRequest(Request):
    """A request whose body was already read and parsed within the limits: FastAPI reads it from here."""

    def __init__(self, request: Request, body: bytes, document: dict[str, Any]) -> None:
        super().__init__(request.scope, request.receive)
        self._checked_body = body
        self._document = document

    async def body(self) -> bytes:
        return self._checked_body

    async def json(self) -> Any:
        return self._document


def limited_route(limits: BodyLimits) -> type[APIRoute]:
    """A FastAPI route class whose POST endpoints read their bodies within `limits` (use as the router's
    route_class)."""

    class LimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            model = body_model(self.endpoint)

            async def checked(request: Request) -> Response:
                if request.method != "POST":
                    return await handler(request)
                body = await read_body(request, limits)
                if len(body) > INLINE_PARSE_BYTES:
                    document = await run_in_threadpool(parse_body, body, limits, model)
                else:
                    document = parse_body(body, limits, model)
                return await handler(CheckedRequest(request, body, document))

            return checked

    return LimitedRoute
