"""Sending a fuzz case through a generic channel, and judging what came back.

The allowed status codes are the ones the service comments in the ``.proto`` files document,
narrowed by what the case makes possible: DEADLINE_EXCEEDED only for a short deadline,
UNAUTHENTICATED only without a good key (and never OK then), PERMISSION_DENIED only for an
option the tenant may not use, RESOURCE_EXHAUSTED with RetryInfo (or without it only for a
message or metadata over gRPC's own size limits). UNKNOWN and INTERNAL are always failures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from tests.fuzz.strategies import GOOD_KEY, PLAIN_KEY, SHORT_TIMEOUT_SECONDS, Case
from tierroute.v1 import model_service_pb2, router_service_pb2

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The services' ``server.max_message_bytes`` default: larger requests are refused by gRPC."""
MAX_METADATA_BYTES = 8 * 1024
"""gRPC's default metadata size limit."""
M = TypeVar("M", bound=Message)
PLAIN_MAX_FALLBACK_THRESHOLD = 0.65
"""The plain tenant's bound of ``options.fallback_threshold``: the router's own threshold."""
_GATED_MODES = frozenset(
    {router_service_pb2.FALLBACK_MODE_STREAMING, router_service_pb2.FALLBACK_MODE_EARLY_WINDOW}
)
_GENERATE = router_service_pb2.RouterServiceGenerateRequest
GOOD_AUTHORIZATIONS = frozenset(
    f"{scheme} {key}{pad}"
    for scheme in ("Bearer", "bearer")
    for key in (GOOD_KEY, PLAIN_KEY)
    for pad in ("", "  ")
) | {f"Bearer   {GOOD_KEY}  "}

ROUTER_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
"""RouterService's documented codes, minus UNAVAILABLE: every tier is up during the fuzz."""
MODEL_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""ModelService's documented codes, minus UNAVAILABLE (the engine runs) and CANCELLED (the
client never cancels)."""


@dataclass
class Outcome:
    """What one call returned."""

    code: grpc.StatusCode
    details: str
    status: status_pb2.Status | None
    responses: list[bytes]


def call(channel: grpc.Channel, method: str, case: Case, streaming: bool) -> Outcome:
    """Send ``case`` with identity serializers (the bytes go out as they are)."""

    def identity(data: bytes) -> bytes:
        return data

    try:
        if streaming:
            stream = channel.unary_stream(
                method, request_serializer=identity, response_deserializer=identity
            )
            responses = list(stream(case.payload, metadata=case.metadata, timeout=case.timeout))
        else:
            unary = channel.unary_unary(
                method, request_serializer=identity, response_deserializer=identity
            )
            responses = [unary(case.payload, metadata=case.metadata, timeout=case.timeout)]
    except grpc.RpcError as error:
        failed: Any = error  # the raised RpcError is also a grpc.Call (code, details, trailers)
        return Outcome(failed.code(), failed.details() or "", _status(failed), [])
    return Outcome(grpc.StatusCode.OK, "", None, responses)


def _status(error: Any) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def _detail(status: status_pb2.Status | None, kind: type[M]) -> M | None:
    for any_detail in status.details if status is not None else ():
        if any_detail.Is(kind.DESCRIPTOR):
            detail = kind()
            any_detail.Unpack(detail)
            return detail
    return None


def bad_request_fields(outcome: Outcome) -> list[str]:
    """Fields named by the BadRequest detail (empty when there is none)."""
    detail = _detail(outcome.status, error_details_pb2.BadRequest)
    if not isinstance(detail, error_details_pb2.BadRequest):
        return []
    return [violation.field for violation in detail.field_violations]


HEADER_OVERHEAD_BYTES = 32
"""What gRPC (HPACK) counts per metadata entry on top of its key and value."""
OWN_HEADERS_BYTES = 1024
"""Room for the headers gRPC sends itself (:path, :authority, te, user-agent, grpc-timeout, ...):
about 570 bytes here, so any case whose own metadata comes within this of the limit counts."""


def _oversized(case: Case) -> bool:
    # gRPC refuses metadata between its soft (8 KiB) and hard limits at random, with its own
    # RESOURCE_EXHAUSTED (no RetryInfo): counted as gRPC counts it, with its own headers.
    meta = sum(len(k) + len(v) + HEADER_OVERHEAD_BYTES for k, v in case.metadata)
    return len(case.payload) > MAX_MESSAGE_BYTES or meta + OWN_HEADERS_BYTES > MAX_METADATA_BYTES


@dataclass
class Judge:
    """Checks one RPC's outcomes and counts them by status code."""

    rpc: str
    allowed: frozenset[grpc.StatusCode]
    fields: frozenset[str]
    """Top-level field names of the request message; BadRequest fields must start with one."""
    authenticated: bool = False
    cost_capped: bool = False
    """FAILED_PRECONDITION is allowed for requests with ``options.max_cost_usd`` (Generate)."""
    counts: Counter[str] = field(default_factory=Counter)

    def check(self, case: Case, outcome: Outcome) -> None:
        """Assert the outcome is one the contract allows for this case; count it."""
        code = outcome.code
        self.counts[code.name] += 1
        where = f"{self.rpc} ({case.form}): {code.name} {outcome.details[:300]!r}"
        assert code in self.allowed, f"undocumented status {where}"
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            names = bad_request_fields(outcome)
            assert names, f"INVALID_ARGUMENT without a BadRequest field: {where}"
            for name in names:
                root = name.split(".")[0].split("[")[0]
                assert root in self.fields | {"request"}, f"unknown field {name!r}: {where}"
        elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            retry = _detail(outcome.status, error_details_pb2.RetryInfo)
            assert retry is not None or _oversized(case), f"no RetryInfo: {where}"
        elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
            assert case.timeout < SHORT_TIMEOUT_SECONDS, f"a long deadline ran out: {where}"
        elif code is grpc.StatusCode.FAILED_PRECONDITION:
            # Not in the service comment, but the contract of RouteOptions.max_cost_usd.
            message: Any = case.message
            capped = self.cost_capped and message is not None
            assert capped and message.options.HasField("max_cost_usd"), where
        if self.authenticated:
            self._check_auth(case, outcome, where)

    def _check_auth(self, case: Case, outcome: Outcome, where: str) -> None:
        good = case.authorization in GOOD_AUTHORIZATIONS
        code = outcome.code
        if code is grpc.StatusCode.UNAUTHENTICATED:
            assert not good, f"a good key was refused: {where}"
        if code is grpc.StatusCode.OK:
            assert good, f"served without a good key ({case.authorization!r}): {where}"
        if code is grpc.StatusCode.PERMISSION_DENIED:
            assert case.authorization is not None and PLAIN_KEY in case.authorization, where
        plain = case.authorization is not None and PLAIN_KEY in case.authorization
        message: Any = case.message
        if code is grpc.StatusCode.OK and plain and isinstance(message, _GENERATE):
            # Every way to spend more is a permission the plain tenant lacks.
            options = message.options
            assert options.fallback_mode not in _GATED_MODES, f"gated mode served: {where}"
            assert not (
                options.HasField("fallback_threshold")
                and options.fallback_threshold > PLAIN_MAX_FALLBACK_THRESHOLD
            ), f"threshold over the plain tenant's bound served: {where}"


def router_stream_ok(responses: Sequence[bytes]) -> None:
    """A served RouterService.Generate stream: Routed first, RouterFinished once and last."""
    events = [router_service_pb2.RouterServiceGenerateResponse.FromString(r) for r in responses]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds and kinds[0] == "routed" and kinds[-1] == "finished", kinds
    assert kinds.count("finished") == 1 and kinds.count("routed") == 1, kinds
    assert events[-1].finished.served_tier in ("small", "large"), events[-1].finished


def model_stream_ok(responses: Sequence[bytes]) -> None:
    """A served ModelService.Generate stream: deltas, then Finished once and last, whose
    completion token count equals the token ids streamed."""
    events = [model_service_pb2.GenerateResponse.FromString(r) for r in responses]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds and kinds[-1] == "finished" and kinds.count("finished") == 1, kinds
    streamed = sum(len(e.delta.token_ids) for e in events[:-1])
    assert events[-1].finished.usage.completion_tokens == streamed, events[-1].finished


def top_fields(message_type: type[Message]) -> frozenset[str]:
    """The top-level field names of a message type."""
    return frozenset(f.name for f in message_type.DESCRIPTOR.fields)
