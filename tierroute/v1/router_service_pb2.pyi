import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
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

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("request_id", "score", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    score: float
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., score: _Optional[float] = ..., comment: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("request_id", "judge", "score", "acceptable", "acceptance_threshold", "served_tier", "replaced", "recorded_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTABLE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SERVED_TIER_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    RECORDED_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    judge: str
    score: float
    acceptable: bool
    acceptance_threshold: float
    served_tier: str
    replaced: bool
    recorded_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., judge: _Optional[str] = ..., score: _Optional[float] = ..., acceptable: _Optional[bool] = ..., acceptance_threshold: _Optional[float] = ..., served_tier: _Optional[str] = ..., replaced: _Optional[bool] = ..., recorded_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetQualityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QualityEstimate(_message.Message):
    __slots__ = ("name", "estimate", "lower_bound", "upper_bound", "samples", "effective_samples")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    estimate: float
    lower_bound: float
    upper_bound: float
    samples: int
    effective_samples: float
    def __init__(self, name: _Optional[str] = ..., estimate: _Optional[float] = ..., lower_bound: _Optional[float] = ..., upper_bound: _Optional[float] = ..., samples: _Optional[int] = ..., effective_samples: _Optional[float] = ...) -> None: ...

class EscalationThreshold(_message.Message):
    __slots__ = ("tier", "value", "samples", "pinned", "last_change_time")
    TIER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    tier: str
    value: float
    samples: int
    pinned: bool
    last_change_time: _timestamp_pb2.Timestamp
    def __init__(self, tier: _Optional[str] = ..., value: _Optional[float] = ..., samples: _Optional[int] = ..., pinned: _Optional[bool] = ..., last_change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JudgeSamples(_message.Message):
    __slots__ = ("judge", "samples", "acceptable", "cost_usd")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ACCEPTABLE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    judge: str
    samples: int
    acceptable: int
    cost_usd: float
    def __init__(self, judge: _Optional[str] = ..., samples: _Optional[int] = ..., acceptable: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class GetQualityResponse(_message.Message):
    __slots__ = ("enabled", "target", "confidence_level", "overall", "tiers", "routes", "thresholds", "savings_ratio", "cost_usd", "baseline_cost_usd", "shadow_cost_usd", "judge_cost_usd", "judges", "computed_time")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_RATIO_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SHADOW_COST_USD_FIELD_NUMBER: _ClassVar[int]
    JUDGE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_TIME_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    target: float
    confidence_level: float
    overall: QualityEstimate
    tiers: _containers.RepeatedCompositeFieldContainer[QualityEstimate]
    routes: _containers.RepeatedCompositeFieldContainer[QualityEstimate]
    thresholds: _containers.RepeatedCompositeFieldContainer[EscalationThreshold]
    savings_ratio: float
    cost_usd: float
    baseline_cost_usd: float
    shadow_cost_usd: float
    judge_cost_usd: float
    judges: _containers.RepeatedCompositeFieldContainer[JudgeSamples]
    computed_time: _timestamp_pb2.Timestamp
    def __init__(self, enabled: _Optional[bool] = ..., target: _Optional[float] = ..., confidence_level: _Optional[float] = ..., overall: _Optional[_Union[QualityEstimate, _Mapping]] = ..., tiers: _Optional[_Iterable[_Union[QualityEstimate, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[QualityEstimate, _Mapping]]] = ..., thresholds: _Optional[_Iterable[_Union[EscalationThreshold, _Mapping]]] = ..., savings_ratio: _Optional[float] = ..., cost_usd: _Optional[float] = ..., baseline_cost_usd: _Optional[float] = ..., shadow_cost_usd: _Optional[float] = ..., judge_cost_usd: _Optional[float] = ..., judges: _Optional[_Iterable[_Union[JudgeSamples, _Mapping]]] = ..., computed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
