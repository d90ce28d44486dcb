"""Runs one RPC's property with the fuzz settings, and checks the services are still well."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzStack
from tests.fuzz.oracle import Judge, call, model_stream_ok, router_stream_ok
from tests.fuzz.strategies import GOOD_KEY, Case
from tierroute.launch import ServiceProcess
from tierroute.v1 import (
    common_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    router_service_pb2_grpc,
)
from tierroute.v1 import router_service_pb2 as rpb

StreamCheck = Callable[[Sequence[bytes]], None]


BATCH = 4
"""Cases per hypothesis example, sent at once: the calls overlap with each other instead of
waiting in turn, and stay under the scripted model services' 8 concurrent streams."""


def run_fuzz(
    judge: Judge,
    channel: grpc.Channel,
    method: str,
    strategy: st.SearchStrategy[Case],
    cases: int,
    streaming: bool = False,
    stream_ok: StreamCheck | None = None,
    explicit: Sequence[Case] = (),
) -> None:
    """Send ``cases`` drawn cases (plus ``explicit`` ones) and judge every outcome.

    A failing batch is shrunk by hypothesis like any other example (to simpler cases).
    """
    with ThreadPoolExecutor(BATCH, thread_name_prefix="fuzz") as pool:

        def property_(batch: list[Case]) -> None:
            outcomes = list(pool.map(lambda case: call(channel, method, case, streaming), batch))
            for case, outcome in zip(batch, outcomes, strict=True):
                judge.check(case, outcome)
                if outcome.code is grpc.StatusCode.OK and stream_ok is not None:
                    stream_ok(outcome.responses)

        test = given(st.lists(strategy, min_size=BATCH, max_size=BATCH))(property_)
        for case in explicit:
            test = example([case])(test)
        settings(
            max_examples=-(-cases // BATCH),
            deadline=None,
            derandomize=True,  # the same cases on every run: CI failures reproduce
            database=None,
            print_blob=False,
            suppress_health_check=list(HealthCheck),
        )(test)()
    assert sum(judge.counts.values()) >= cases, judge.counts


GOOD = (("authorization", f"Bearer {GOOD_KEY}"),)


def _serving(process: ServiceProcess) -> None:
    with grpc.insecure_channel(process.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING, process.module
    assert process.process.poll() is None, f"{process.module} exited"


def assert_healthy(stack: FuzzStack) -> None:
    """Every process SERVING and alive, normal requests served, no unhandled error logged."""
    for process in (stack.router, stack.small, stack.large):
        _serving(process)
    prompt = common_pb2.Prompt(text="What is the capital of France?")
    router = router_service_pb2_grpc.RouterServiceStub(stack.router_channel)  # type: ignore[no-untyped-call]
    decision = router.Route(rpb.RouteRequest(prompt=prompt), metadata=GOOD, timeout=5)
    assert decision.decision.tier in ("small", "large")
    events = list(
        router.Generate(rpb.RouterServiceGenerateRequest(prompt=prompt), metadata=GOOD, timeout=5)
    )
    router_stream_ok([e.SerializeToString() for e in events])
    tiers = router.ListTiers(rpb.ListTiersRequest(), metadata=GOOD, timeout=5).tiers
    assert [(t.name, t.healthy_endpoints) for t in tiers] == [("small", 1), ("large", 1)]
    model = model_service_pb2_grpc.ModelServiceStub(stack.model_channel)  # type: ignore[no-untyped-call]
    stream = model.Generate(model_service_pb2.GenerateRequest(prompt=prompt), timeout=5)
    model_stream_ok([e.SerializeToString() for e in stream])
    for name in ("router", "small", "large"):
        errors = [
            line
            for line in (stack.logs / f"{name}.log").read_text(errors="replace").splitlines()
            if line.startswith("{") and json.loads(line).get("level") in ("error", "critical")
        ]
        assert not errors, f"{name} logged errors:\n" + "\n".join(errors[:5])
