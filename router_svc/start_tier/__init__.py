"""The learned start tier: where a request starts, learned from the cascade's outcomes.

What belongs here: the features of a routing text, the per-tier escalation model, the
cost-based choice of the start tier, the learner (decide, observe, refit in the background,
reset) and its persistence. What does not: the decision order (``router_svc.policy`` asks this
package only when no tier hint or rule decided) and anything gRPC.
"""

from router_svc.start_tier.choice import expected_costs, start_index
from router_svc.start_tier.features import CheapFeatures, Featurizer, WithEmbedding
from router_svc.start_tier.learner import StartChoice, StartTierLearner, TierPrice, open_learner
from router_svc.start_tier.metrics import StartTierMetrics
from router_svc.start_tier.settings import StartTierSettings
from router_svc.start_tier.store import FileStore, MemoryStore, StartTierState, StartTierStore

__all__ = [
    "CheapFeatures",
    "Featurizer",
    "FileStore",
    "MemoryStore",
    "StartChoice",
    "StartTierLearner",
    "StartTierMetrics",
    "StartTierSettings",
    "StartTierState",
    "StartTierStore",
    "TierPrice",
    "WithEmbedding",
    "expected_costs",
    "open_learner",
    "start_index",
]
