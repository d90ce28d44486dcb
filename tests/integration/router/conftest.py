"""The real stack, once per session: two vLLM-CPU model services and the router, as processes.

The small engine is bound to core 0 and the large one to core 1 (2-core machine); both start at
once. The router runs as ``python -m router_svc`` with the ONNX classifier off (rules and the
default tier decide), so every decision here is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tierroute.launch import ServiceProcess, launch_module
from tierroute.v1 import router_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
PRICES = {"small": (0.05, 0.10), "large": (0.50, 1.50)}
ENGINE_START_SECONDS = 420  # both engines start at once on 2 busy cores


@dataclass
class RealStack:
    """The processes of the stack."""

    small: ServiceProcess
    large: ServiceProcess
    router: ServiceProcess


def _engine_env(core: int) -> dict[str, str]:
    cache = ROOT / ".cache"
    return {
        "TIERROUTE_ENGINE__CPU_THREADS_BIND": str(core),
        "TIERROUTE_ENGINE__KV_CACHE_GIB": "1",
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    logs = tmp_path_factory.mktemp("real-stack")
    small = ServiceProcess(
        "model_svc", ["--tier", "small"], env=_engine_env(0), cwd=ROOT, log_path=logs / "small.log"
    )
    large = ServiceProcess(
        "model_svc", ["--tier", "large"], env=_engine_env(1), cwd=ROOT, log_path=logs / "large.log"
    )
    started = [small, large]
    try:
        small.wait_until_serving(ENGINE_START_SECONDS)
        large.wait_until_serving(ENGINE_START_SECONDS)
        config = logs / "router.yaml"
        config.write_text(
            json.dumps(
                {
                    "classifier": {"enabled": False},
                    "tiers": [
                        {
                            "name": name,
                            "endpoints": [process.address],
                            "input_usd_per_mtok": PRICES[name][0],
                            "output_usd_per_mtok": PRICES[name][1],
                        }
                        for name, process in (("small", small), ("large", large))
                    ],
                    "resilience": {
                        "retries": 1,
                        "health_check_interval_seconds": 1,
                        "circuit_failure_threshold": 2,
                    },
                }
            )
        )
        router = launch_module(
            "router_svc",
            ["--config", str(config)],
            cwd=ROOT,
            log_path=logs / "router.log",
            timeout_seconds=60,
        )
        started.append(router)
        yield RealStack(small, large, router)
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture(scope="session")
async def router_stub(
    real_stack: RealStack,
) -> AsyncIterator[router_service_pb2_grpc.RouterServiceStub]:
    async with grpc.aio.insecure_channel(real_stack.router.address) as channel:
        yield router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
