from tierroute.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FallbackMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_MODE_UNSPECIFIED: _ClassVar[FallbackMode]
    FALLBACK_MODE_BUFFERED: _ClassVar[FallbackMode]
    FALLBACK_MODE_STREAMING: _ClassVar[FallbackMode]
    FALLBACK_MODE_EARLY_WINDOW: _ClassVar[FallbackMode]
    FALLBACK_MODE_DISABLED: _ClassVar[FallbackMode]

class EscalationCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_CAUSE_UNSPECIFIED: _ClassVar[EscalationCause]
    ESCALATION_CAUSE_LOW_CONFIDENCE: _ClassVar[EscalationCause]
    ESCALATION_CAUSE_EARLY_WINDOW: _ClassVar[EscalationCause]
    ESCALATION_CAUSE_TIER_ERROR: _ClassVar[EscalationCause]
FALLBACK_MODE_UNSPECIFIED: FallbackMode
FALLBACK_MODE_BUFFERED: FallbackMode
FALLBACK_MODE_STREAMING: FallbackMode
FALLBACK_MODE_EARLY_WINDOW: FallbackMode
FALLBACK_MODE_DISABLED: FallbackMode
ESCALATION_CAUSE_UNSPECIFIED: EscalationCause
ESCALATION_CAUSE_LOW_CONFIDENCE: EscalationCause
ESCALATION_CAUSE_EARLY_WINDOW: EscalationCause
ESCALATION_CAUSE_TIER_ERROR: EscalationCause

class RouteOptions(_message.Message):
    __slots__ = ("fallback_mode", "tier_hint", "max_cost_usd", "fallback_threshold")
    FALLBACK_MODE_FIELD_NUMBER: _ClassVar[int]
    TIER_HINT_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    fallback_mode: FallbackMode
    tier_hint: str
    max_cost_usd: float
    fallback_threshold: float
    def __init__(self, fallback_mode: _Optional[_Union[FallbackMode, str]] = ..., tier_hint: _Optional[str] = ..., max_cost_usd: _Optional[float] = ..., fallback_threshold: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("tier", "reason", "classifier_score", "threshold", "decision_latency_ms")
    TIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DECISION_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    reason: str
    classifier_score: float
    threshold: float
    decision_latency_ms: float
    def __init__(self, tier: _Optional[str] = ..., reason: _Optional[str] = ..., classifier_score: _Optional[float] = ..., threshold: _Optional[float] = ..., decision_latency_ms: _Optional[float] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("prompt", "options")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    prompt: _common_pb2.Prompt
    options: RouteOptions
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., options: _Optional[_Union[RouteOptions, _Mapping]] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class RouterServiceGenerateRequest(_message.Message):
    __slots__ = ("prompt", "sampling", "options", "request_id")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    prompt: _common_pb2.Prompt
    sampling: _common_pb2.SamplingParams
    options: RouteOptions
    request_id: str
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., options: _Optional[_Union[RouteOptions, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Routed(_message.Message):
    __slots__ = ("decision", "request_id")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    request_id: str
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Escalated(_message.Message):
    __slots__ = ("from_tier", "to_tier", "cause", "confidence_score", "reason", "discarded_tokens")
    FROM_TIER_FIELD_NUMBER: _ClassVar[int]
    TO_TIER_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    from_tier: str
    to_tier: str
    cause: EscalationCause
    confidence_score: float
    reason: str
    discarded_tokens: int
    def __init__(self, from_tier: _Optional[str] = ..., to_tier: _Optional[str] = ..., cause: _Optional[_Union[EscalationCause, str]] = ..., confidence_score: _Optional[float] = ..., reason: _Optional[str] = ..., discarded_tokens: _Optional[int] = ...) -> None: ...

class TierUsage(_message.Message):
    __slots__ = ("tier", "usage", "cost_usd", "discarded")
    TIER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    tier: str
    usage: _common_pb2.Usage
    cost_usd: float
    discarded: bool
    def __init__(self, tier: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., discarded: _Optional[bool] = ...) -> None: ...

class RouterFinished(_message.Message):
    __slots__ = ("served_tier", "finish_reason", "tier_usage", "cost_usd", "baseline_cost_usd", "savings_usd", "confidence", "escalated", "degraded", "degraded_reason", "ttft_ms", "total_ms")
    SERVED_TIER_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    TIER_USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_USD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    served_tier: str
    finish_reason: _common_pb2.FinishReason
    tier_usage: _containers.RepeatedCompositeFieldContainer[TierUsage]
    cost_usd: float
    baseline_cost_usd: float
    savings_usd: float
    confidence: _common_pb2.Confidence
    escalated: bool
    degraded: bool
    degraded_reason: str
    ttft_ms: float
    total_ms: float
    def __init__(self, served_tier: _Optional[str] = ..., finish_reason: _Optional[_Union[_common_pb2.FinishReason, str]] = ..., tier_usage: _Optional[_Iterable[_Union[TierUsage, _Mapping]]] = ..., cost_usd: _Optional[float] = ..., baseline_cost_usd: _Optional[float] = ..., savings_usd: _Optional[float] = ..., confidence: _Optional[_Union[_common_pb2.Confidence, _Mapping]] = ..., escalated: _Optional[bool] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ..., ttft_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class RouterServiceGenerateResponse(_message.Message):
    __slots__ = ("routed", "delta", "escalated", "finished")
    ROUTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    routed: Routed
    delta: _common_pb2.TokenDelta
    escalated: Escalated
    finished: RouterFinished
    def __init__(self, routed: _Optional[_Union[Routed, _Mapping]] = ..., delta: _Optional[_Union[_common_pb2.TokenDelta, _Mapping]] = ..., escalated: _Optional[_Union[Escalated, _Mapping]] = ..., finished: _Optional[_Union[RouterFinished, _Mapping]] = ...) -> None: ...

class ListTiersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TierInfo(_message.Message):
    __slots__ = ("name", "input_usd_per_mtok", "output_usd_per_mtok", "endpoints", "healthy_endpoints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    endpoints: int
    healthy_endpoints: int
    def __init__(self, name: _Optional[str] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ..., endpoints: _Optional[int] = ..., healthy_endpoints: _Optional[int] = ...) -> None: ...

class ListTiersResponse(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[TierInfo]
    def __init__(self, tiers: _Optional[_Iterable[_Union[TierInfo, _Mapping]]] = ...) -> None: ...
