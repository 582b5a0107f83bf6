"""The FastAPI app: routes wired to the serving classes, bearer-token auth, error bodies and metrics.

Thin on purpose: request parsing is pydantic (`protocol`, `openai_protocol`), the work is `service.RewardService`
and, with a generator, `best_of_n_service.BestOfNService` (OpenAI's chat and completions), batching is
`batcher.Batcher`, request bodies are read within the server's limits by `bodies.LimitedRoute`. Every error answer
has OpenAI's shape `{"error": {"message", "type", "param", "code"}}`, and /openapi.json documents those (400 for
a request the server will not run, never FastAPI's 422).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import openai_protocol, protocol
from .best_of_n_service import BestOfNService
from .bodies import BodyLimits, limited_route
from .metrics import Metrics
from .service import RequestError, RewardService

# Paths anyone may call without the API key (load balancers and orchestrators probe it).
PUBLIC_PATHS = frozenset({"/health"})


def _error(description: str) -> dict[str, Any]:
    return {"model": protocol.ErrorResponse, "description": description}


# What the POST endpoints may answer besides 200, as /openapi.json documents it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request is malformed or names something invalid; `param` names the field."),
    401: _error("Missing or wrong API key (servers started with --api-key)."),
    404: _error("The model named is not served here (or no generator serves this endpoint)."),
    413: _error("The body is over --max-request-bytes, or a text in it over --max-text-chars (`param` names it)."),
    503: _error("The queue is full or the server is shutting down; retry after the Retry-After header's seconds."),
}


class SafeJSONResponse(JSONResponse):
    """JSON that any client can read: readable UTF-8, or escapes when a field holds a lone surrogate (legal in a JSON
    request, not encodable as UTF-8), so hostile input never turns an answer into a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _answer(result: Any) -> SafeJSONResponse:
    return SafeJSONResponse(result.model_dump())


def error_response(status: int, message: str, *, type: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = protocol.ErrorResponse(error=protocol.ErrorInfo(message=message, type=type, param=param, code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _param(location: tuple[Any, ...]) -> str | None:
    """A pydantic error location as a field path: ('body', 'pairs', 0, 'code') -> 'pairs[0].code'."""
    parts = [p for p in location if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def create_app(service: RewardService, metrics: Metrics, *, limits: BodyLimits, api_key: str | None = None,
               on_shutdown: Callable[[], None] | None = None,
               on_startup: Callable[[], None] | None = None,
               best_of_n: BestOfNService | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if on_startup is not None:
            on_startup()
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="codescaler serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.router.route_class = limited_route(limits)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, without the 422 answers this server never gives (its validation errors are 400s)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.middleware("http")
    async def authenticate_and_measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                                       ) -> Response:
        path = request.url.path
        started = time.perf_counter()
        request.state.received = started  # the best-of-N endpoints measure their first byte from here
        if api_key and path not in PUBLIC_PATHS:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
                # Paths a client made up are one label, so unauthenticated requests cannot grow the metrics.
                known = path if any(getattr(r, "path", None) == path for r in app.routes) else "other"
                metrics.requests.labels(known, "401").inc()
                return error_response(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                      type="authentication_error")
        if request.method == "POST" and "json" not in request.headers.get("content-type", ""):
            # Bodies are always JSON here; accept them whatever the client labelled them (curl -d says form data).
            request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"] + [
                (b"content-type", b"application/json")]
        response = await call_next(request)
        if path != "/metrics":
            known = path if any(getattr(r, "path", None) == path for r in app.routes) else "other"
            metrics.requests.labels(known, str(response.status_code)).inc()
            metrics.latency.labels(known).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.message, type=exc.type, param=exc.param, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = _param(tuple(first.get("loc", ())))
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return error_response(400, message, type="invalid_request_error", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), type=kind)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")

    @app.get("/health")
    async def health() -> Response:
        if not service.batcher.alive:
            return error_response(503, "the scoring worker is not running", type="server_unavailable")
        return JSONResponse({"status": "ok", "queue_depth": service.batcher.depth})

    @app.get("/v1/models")
    async def models() -> protocol.ModelList:
        return service.models()

    @app.get("/metrics")
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/v1/rank", responses=ERROR_RESPONSES)
    async def rank(request: protocol.RankRequest) -> Response:
        metrics.items.labels("/v1/rank").inc(len(request.candidates))
        return _answer(await service.rank(request))

    @app.post("/v1/score", responses=ERROR_RESPONSES)
    async def score(request: protocol.ScoreRequest) -> Response:
        metrics.items.labels("/v1/score").inc(len(request.pairs))
        return _answer(await service.score(request))

    @app.post("/v1/rewards", responses=ERROR_RESPONSES)
    async def rewards(request: protocol.RewardsRequest) -> Response:
        metrics.items.labels("/v1/rewards").inc(len(request.items))
        return _answer(await service.rewards(request))

    @app.post("/get_reward", responses=ERROR_RESPONSES)
    async def get_reward(request: protocol.GetRewardRequest) -> Response:
        metrics.items.labels("/get_reward").inc(len(request.query))
        return _answer(await service.get_reward(request))

    @app.post("/classify", responses=ERROR_RESPONSES)
    async def classify(request: protocol.ClassifyRequest) -> Response:
        metrics.items.labels("/classify").inc(len(request.input) if isinstance(request.input, list) else 1)
        return _answer(await service.classify(request))

    def best_of_n_service() -> BestOfNService:
        if best_of_n is None:
            raise RequestError("this server has no generator: start it with --generator-url URL (an OpenAI-compatible "
                               "server such as vLLM's) or -m MODEL to serve best-of-N completions", status=404,
                               type="not_found_error")
        return best_of_n

    def answer(result: Any) -> Any:
        if isinstance(result, (openai_protocol.ChatCompletionResponse, openai_protocol.CompletionResponse)):
            return _answer(result)
        # No proxy buffering: the chosen text should reach the client as soon as it is written.
        return StreamingResponse(result, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions", response_model=None, responses=ERROR_RESPONSES)
    async def chat_completions(request: openai_protocol.ChatCompletionRequest, http: Request) -> Response:
        return answer(await best_of_n_service().chat(request, http.state.received))

    @app.post("/v1/completions", response_model=None, responses=ERROR_RESPONSES)
    async def completions(request: openai_protocol.CompletionRequest, http: Request) -> Response:
        return answer(await best_of_n_service().completions(request, http.state.received))

    return app
