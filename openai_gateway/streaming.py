"""Server-sent events for streamed completions, in the shape the ``openai`` client parses.

The HTTP response is committed (status and headers sent) only when the router has produced its
first text or finished, so failures before that still get their proper HTTP status. After that
an error travels as a ``data: {"error": {...}}`` event, which the ``openai`` client raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from openai_gateway.errors import ApiError, bad_gateway, from_rpc_error
from openai_gateway.responses import Kind, StreamState, chunk, escalation, facts, finish_reason

DONE = "data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> str:
    """One SSE ``data:`` event (compact JSON keeps chunks small)."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def open_stream(messages: AsyncIterator[Any], state: StreamState) -> str:
    """Consume events up to the first text or the finish; returns that event's kind.

    Raises :class:`grpc.aio.AioRpcError` / :class:`ApiError` while the response can still carry
    an HTTP error status.
    """
    async for message in messages:
        kind = state.feed(message)
        if kind == "finished":
            finish_reason(state.finished)  # an aborted generation fails here, before commit
            return kind
        if kind == "delta":
            return kind
    raise bad_gateway("the router closed the stream early")


async def event_stream(
    kind: Kind,
    state: StreamState,
    messages: AsyncIterator[Any],
    first: str,
    *,
    include_usage: bool,
    prompt_param: str,
    on_first_text: Callable[[], None],
    on_end: Callable[[], None],
) -> AsyncIterator[str]:
    """The SSE body after :func:`open_stream`: opening chunk, text, escalations, final chunk."""
    created = int(time.time())
    try:
        if kind is Kind.CHAT:
            yield sse(chunk(kind, state, created, role=True))
        pending: str | None = first
        while True:
            event = pending
            pending = None
            if event is None:
                message = await anext(messages, None)
                if message is None:
                    raise bad_gateway("the router closed the stream early")
                event = state.feed(message)
            if event == "delta":
                text = state.parts[-1]
                if text:
                    on_first_text()
                    yield sse(chunk(kind, state, created, text=text))
            elif event == "escalated":
                # Only reachable in STREAMING/EARLY_WINDOW modes: text already sent is void.
                extra = {"escalation": escalation(state.escalations[-1]), "discard_previous": True}
                yield sse(chunk(kind, state, created, extra=extra))
            elif event == "finished":
                reason = finish_reason(state.finished)
                yield sse(chunk(kind, state, created, finish=reason, extra=facts(state)))
                if include_usage:
                    yield sse(chunk(kind, state, created, with_usage=True))
                yield DONE
                return
    except grpc.aio.AioRpcError as exc:
        yield sse(from_rpc_error(exc, prompt_param).body())
    except ApiError as exc:
        yield sse(exc.body())
    finally:
        on_end()
