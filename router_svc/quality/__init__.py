"""Holding the quality promise on live traffic: judged samples, monitor, threshold controller.

What belongs here: the gRPC-free domain core that turns judged shadow samples into evidence:
the sample record and its store (:mod:`.samples`), the adaptive sampling rate
(:mod:`.sampling`), the served-quality estimate with its confidence bounds (:mod:`.monitor`),
the escalation threshold certified by Learn-then-Test (:mod:`.controller`, :mod:`.ltt`), the
learned escalation score (:mod:`.escalation_score`), their metrics (:mod:`.metrics`) and
settings (:mod:`.settings`), and :class:`QualityLoop` (:mod:`.loop`), the one object the router
calls. What does not: judging itself, the shadow calls and anything that speaks gRPC; those
feed samples in and read thresholds and scores out.
"""

from router_svc.quality.controller import (
    LttResult,
    ThresholdChange,
    ThresholdController,
    TierThreshold,
    choose_threshold,
)
from router_svc.quality.escalation_score import ScoreModel, out_of_fold_scores
from router_svc.quality.loop import QualityLoop
from router_svc.quality.metrics import QualityMetrics
from router_svc.quality.monitor import (
    CostTotals,
    QualityEstimate,
    QualityMonitor,
    QualityReport,
    savings_ratio,
)
from router_svc.quality.samples import (
    InProcessSampleStore,
    JudgedSample,
    SampleFormatError,
    SampleStore,
)
from router_svc.quality.sampling import AdaptiveSampler, SamplingDecision
from router_svc.quality.settings import QualitySettings

__all__ = [
    "AdaptiveSampler",
    "CostTotals",
    "InProcessSampleStore",
    "JudgedSample",
    "LttResult",
    "QualityEstimate",
    "QualityLoop",
    "QualityMetrics",
    "QualityMonitor",
    "QualityReport",
    "QualitySettings",
    "SampleFormatError",
    "SampleStore",
    "SamplingDecision",
    "ScoreModel",
    "ThresholdChange",
    "ThresholdController",
    "TierThreshold",
    "choose_threshold",
    "out_of_fold_scores",
    "savings_ratio",
]
