"""The Starlette application: OpenAI's HTTP API in front of ``tierroute.v1.RouterService``.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (both streaming and not),
``GET /v1/models`` and ``GET /v1/models/{id}``, ``POST /v1/feedback`` (the caller's verdict on
an answer), plus ``/healthz``, ``/readyz`` and ``/metrics``. Handlers only translate: request
bodies in :mod:`~openai_gateway.translate` and :mod:`~openai_gateway.feedback`, events out in
:mod:`~openai_gateway.responses`, statuses in :mod:`~openai_gateway.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from openai_gateway.config import OpenAISettings
from openai_gateway.errors import ApiError, bad_gateway, from_rpc_error
from openai_gateway.feedback import feedback_body, parse_feedback
from openai_gateway.metrics import HttpMetrics
from openai_gateway.responses import Kind, StreamState, body, headers
from openai_gateway.streaming import event_stream, open_stream
from openai_gateway.translate import Defaults, ParsedRequest, parse_chat, parse_completion
from openai_gateway.upstream import Metadata, RouterUpstream

T = TypeVar("T")
_log = structlog.get_logger("openai_gateway")
_READY_TIMEOUT_SECONDS = 2.0
# Looking up tier names is metadata: it must not eat a long generation deadline.
_LIST_TIERS_TIMEOUT_SECONDS = 10.0
# Storing a verdict is a small write: a generation's deadline would only hide a stuck router.
_FEEDBACK_TIMEOUT_SECONDS = 10.0


class ClientGoneError(Exception):
    """The HTTP caller disconnected before the answer was ready."""


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` but cancel it when the caller hangs up (so the router stops generating)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGoneError
    return task.result()


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=dict(error.headers))


class Gateway:
    """Request handlers over one router connection (created in the app's lifespan)."""

    def __init__(self, settings: OpenAISettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = HttpMetrics(registry)
        self._registry = registry
        self._defaults = Defaults(
            settings.models.default_max_tokens, settings.models.default_fallback_mode
        )
        self._upstream: RouterUpstream | None = None
        self._created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the router channel for the app's lifetime."""
        self._upstream = RouterUpstream(self.settings.router)
        _log.info("router channel open", target=self.settings.router.target)
        try:
            yield
        finally:
            await self._upstream.close()
            self._upstream = None

    @property
    def upstream(self) -> RouterUpstream:
        """The router connection; only valid while the app runs."""
        if self._upstream is None:
            raise ApiError(503, "the endpoint is starting or stopping", "server_error")
        return self._upstream

    # -- request helpers -------------------------------------------------------------------

    @staticmethod
    def _metadata(request: Request) -> Metadata:
        pairs: list[tuple[str, str]] = []
        if authorization := request.headers.get("authorization"):
            # Passed through untouched: the router owns authentication.
            pairs.append(("authorization", authorization))
        request_id = request.headers.get("x-request-id", "")
        if 0 < len(request_id) <= 128:
            pairs.append(("x-request-id", request_id))
        return tuple(pairs)

    def _timeout(self, request: Request) -> float:
        raw = request.headers.get("x-tierroute-timeout-seconds")
        if raw is None:
            return self.settings.router.timeout_seconds
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= self.settings.router.max_timeout_seconds:
            raise ApiError(
                400,
                "x-tierroute-timeout-seconds must be a number in "
                f"(0, {self.settings.router.max_timeout_seconds:g}]",
                param="x-tierroute-timeout-seconds",
                code="invalid_value",
            )
        return seconds

    async def _json(self, request: Request) -> Any:
        limit = self.settings.http.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise ApiError(413, f"request body larger than {limit} bytes", code="too_large")
        raw = await request.body()
        if len(raw) > limit:
            raise ApiError(413, f"request body larger than {limit} bytes", code="too_large")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from exc

    async def _tier_hint(self, model: str, metadata: Metadata, timeout: float) -> str:
        if model == self.settings.models.auto_model:
            return ""
        names = await self.upstream.tier_names(metadata, min(timeout, _LIST_TIERS_TIMEOUT_SECONDS))
        if model not in names:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; use '{self.settings.models.auto_model}' "
                f"or one of the tiers {list(names)}",
                param="model",
                code="model_not_found",
            )
        return model

    # -- handlers --------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        return await self._completions(request, Kind.CHAT)

    async def completions(self, request: Request) -> Response:
        """``POST /v1/completions`` (a raw prompt, no chat template)."""
        return await self._completions(request, Kind.COMPLETION)

    async def _completions(self, request: Request, kind: Kind) -> Response:
        started = time.perf_counter()
        route = "chat_completions" if kind is Kind.CHAT else "completions"
        prompt_param = "messages" if kind is Kind.CHAT else "prompt"
        response: Response
        try:
            response = await self._generate(request, kind, route, started)
        except ApiError as exc:
            response = _error_response(exc)
        except grpc.aio.AioRpcError as exc:
            response = _error_response(from_rpc_error(exc, prompt_param))
        except ClientGoneError:
            response = Response(status_code=499)
        if not isinstance(response, StreamingResponse):
            self._finish(route, response.status_code, started, response.headers)
        return response

    def _finish(self, route: str, status: int, started: float, out: Any) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe(route, status, seconds)
        _log.info(
            "request",
            route=route,
            status=status,
            request_id=out.get("x-request-id", ""),
            tier=out.get("x-tierroute-tier", ""),
            escalated=out.get("x-tierroute-escalated", ""),
            duration_ms=round(seconds * 1000, 2),
        )

    async def _generate(self, request: Request, kind: Kind, route: str, started: float) -> Response:
        metadata = self._metadata(request)
        timeout = self._timeout(request)
        document = await self._json(request)
        parsed: ParsedRequest = (parse_chat if kind is Kind.CHAT else parse_completion)(
            document, self._defaults
        )
        parsed.generate.options.tier_hint = await self._tier_hint(parsed.model, metadata, timeout)
        parsed.generate.request_id = dict(metadata).get("x-request-id", "")
        call = self.upstream.generate(parsed.generate, metadata, timeout)
        state = StreamState()
        messages = call.__aiter__()
        handed_over = False
        try:
            if not parsed.stream:

                async def drain() -> None:
                    async for message in messages:
                        state.feed(message)

                await _until_disconnect(request, drain())
                if state.finished is None:
                    raise bad_gateway("the router closed the stream early")
                return JSONResponse(body(kind, state, int(time.time())), headers=headers(state))
            first = await _until_disconnect(request, open_stream(messages, state))
            handed_over = True
            return StreamingResponse(
                event_stream(
                    kind,
                    state,
                    messages,
                    first,
                    include_usage=parsed.include_usage,
                    prompt_param="messages" if kind is Kind.CHAT else "prompt",
                    on_first_text=self._first_text(route, started),
                    on_end=self._stream_end(call, route, started, state),
                ),
                media_type="text/event-stream",
                headers={**headers(state), "cache-control": "no-cache"},
            )
        finally:
            if not handed_over:
                call.cancel()

    def _first_text(self, route: str, started: float) -> Callable[[], None]:
        seen = False

        def observe() -> None:
            nonlocal seen
            if not seen:
                seen = True
                self.metrics.ttft.labels(route).observe(time.perf_counter() - started)

        return observe

    def _stream_end(self, call: Any, route: str, started: float, state: StreamState) -> Any:
        def end() -> None:
            call.cancel()  # no-op when finished; stops the router when the caller went away
            self._finish(route, 200, started, headers(state))

        return end

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: the automatic model plus every tier (pin one by its name)."""
        started = time.perf_counter()
        try:
            models = await self._models(request)
            response: Response = JSONResponse({"object": "list", "data": models})
        except ApiError as exc:
            response = _error_response(exc)
        except grpc.aio.AioRpcError as exc:
            response = _error_response(from_rpc_error(exc))
        self._finish("models", response.status_code, started, response.headers)
        return response

    async def retrieve_model(self, request: Request) -> Response:
        """``GET /v1/models/{model}``."""
        wanted = request.path_params["model"]
        try:
            models = await self._models(request)
        except ApiError as exc:
            return _error_response(exc)
        except grpc.aio.AioRpcError as exc:
            return _error_response(from_rpc_error(exc))
        for model in models:
            if model["id"] == wanted:
                return JSONResponse(model)
        error = ApiError(404, f"The model '{wanted}' does not exist", "invalid_request_error")
        return _error_response(ApiError(404, error.message, param="model", code="model_not_found"))

    async def _models(self, request: Request) -> list[dict[str, Any]]:
        tiers = await self.upstream.list_tiers(self._metadata(request), self._timeout(request))

        def entry(name: str, extra: dict[str, Any]) -> dict[str, Any]:
            return {
                "id": name,
                "object": "model",
                "created": self._created,
                "owned_by": "tierroute",
                "tierroute": extra,
            }

        auto = entry(self.settings.models.auto_model, {"tiers": [t.name for t in tiers]})
        return [auto] + [
            entry(
                t.name,
                {
                    "input_usd_per_mtok": t.input_usd_per_mtok,
                    "output_usd_per_mtok": t.output_usd_per_mtok,
                    "endpoints": t.endpoints,
                    "healthy_endpoints": t.healthy_endpoints,
                },
            )
            for t in tiers
        ]

    async def feedback(self, request: Request) -> Response:
        """``POST /v1/feedback``: the caller's verdict on an answer, stored by the router."""
        started = time.perf_counter()
        response: Response
        try:
            metadata = self._metadata(request)
            timeout = min(self._timeout(request), _FEEDBACK_TIMEOUT_SECONDS)
            message = parse_feedback(await self._json(request))
            reply = await self.upstream.submit_feedback(message, metadata, timeout)
            response = JSONResponse(feedback_body(reply))
        except ApiError as exc:
            response = _error_response(exc)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if error.status == 404:
                # The only thing SubmitFeedback looks up is the request it judges.
                error.param = "request_id"
            response = _error_response(error)
        self._finish("feedback", response.status_code, started, response.headers)
        return response

    async def metrics_text(self, request: Request) -> Response:
        """Prometheus exposition of this endpoint's registry."""
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        """Liveness: the process serves HTTP."""
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Readiness: the router answers ``ListTiers`` and has a healthy endpoint; a router
        with API keys on (``ListTiers`` needs a key the endpoint does not hold) is ready when
        its gRPC health service reports SERVING."""
        try:
            tiers = await self.upstream.list_tiers((), _READY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return await self._ready_by_health()
            detail = from_rpc_error(exc).message
            return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
        except ApiError as exc:
            return JSONResponse({"status": "unavailable", "detail": exc.message}, status_code=503)
        healthy = any(t.healthy_endpoints > 0 for t in tiers)
        return JSONResponse(
            {"status": "ok" if healthy else "no healthy tier"}, status_code=200 if healthy else 503
        )

    async def _ready_by_health(self) -> Response:
        try:
            serving = await self.upstream.serving(_READY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            detail = from_rpc_error(exc).message
            return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
        if not serving:
            return JSONResponse({"status": "router not serving"}, status_code=503)
        return JSONResponse({"status": "ok", "detail": "router serving (tier list needs a key)"})


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods answer in OpenAI's error shape too.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    code = "not_found" if status == 404 else None
    return _error_response(ApiError(status, str(detail), code=code))


def create_app(settings: OpenAISettings, registry: CollectorRegistry | None = None) -> Starlette:
    """The ASGI app; serve it with uvicorn (see :mod:`openai_gateway.__main__`)."""
    registry = registry or CollectorRegistry()
    gateway = Gateway(settings, registry)
    routes = [
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/models", gateway.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", gateway.retrieve_model, methods=["GET"]),
        Route("/v1/feedback", gateway.feedback, methods=["POST"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        Route("/metrics", gateway.metrics_text, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error
    }
    return Starlette(routes=routes, lifespan=gateway.lifespan, exception_handlers=handlers)
