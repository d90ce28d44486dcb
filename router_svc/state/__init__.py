"""Router state shared by every replica: budgets, rate limits, open streams, learned state.

One interface (:class:`~router_svc.state.store.RouterState`) with two backends: in-process
(:mod:`router_svc.state.memory`, the embedded default for one router) and Redis
(:mod:`router_svc.state.redis_store`), wrapped by :mod:`router_svc.state.resilient` so that a slow
or unreachable Redis is a decided fault (replica-local fallback, a ``degraded`` metric, budgets
closed or open by configuration), never a hang. :func:`~router_svc.state.factory.open_state` is
the one place that picks a backend from the ``state`` settings. No gRPC here.
"""

from router_svc.state.settings import StateSettings
from router_svc.state.store import Reservation, RouterState, StreamSlot

__all__ = ["Reservation", "RouterState", "StateSettings", "StreamSlot"]
