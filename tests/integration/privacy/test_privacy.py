"""No prompt or completion text, API key or shared secret in any log line or metric of a run.

Real processes on loopback: the router (``python -m router_svc``, API keys required, a shared secret
towards the tiers) over two model services (``python -m model_svc.scripted_server``: ``model_svc``'s
own server, answers carrying a marker, the shared secret required). Prompts carry a unique marker
too. After served, escalated, streamed, refused and invalid requests, every log file and every
``/metrics`` page is searched for the markers and the credentials. Then the router runs again with
``logging.log_prompts`` on, and the prompt marker must show up in its log: the search would find it,
so its silence above means something.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from router_svc.auth import hash_key
from tierroute.launch import ServiceProcess, launch_module
from tierroute.v1 import common_pb2, router_service_pb2_grpc
from tierroute.v1 import router_service_pb2 as rpb

ROOT = Path(__file__).resolve().parents[3]
RUN = uuid.uuid4().hex[:10]
PROMPT_MARK = f"PromptMark{RUN}"
COMPLETION_MARK = f"AnswerMark{RUN}"
API_KEY = f"tr-privacy-{RUN}-key"  # generated per run, not a secret
PLAIN_KEY = f"tr-privacy-{RUN}-plain"
WRONG_KEY = f"tr-privacy-{RUN}-wrong"
PEER_SECRET = f"peer-secret-{RUN}-0123456789abcdef"


@dataclass
class Tiers:
    """The two model services and where their logs go."""

    small: ServiceProcess
    large: ServiceProcess
    logs: Path
    secret_file: Path


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiers]:
    logs = tmp_path_factory.mktemp("privacy")
    secret_file = logs / "peer-secret"
    secret_file.write_text(PEER_SECRET + "\n")
    env = {
        "TIERROUTE_AUTH__MODE": "shared_secret",
        "TIERROUTE_AUTH__SHARED_SECRET_FILE": str(secret_file),
    }
    started = []
    try:
        for tier, extra in (("small", ["--unsure", "hard"]), ("large", [])):
            started.append(
                ServiceProcess(
                    "model_svc.scripted_server",
                    ["--tier", tier, "--answer", f"The answer is {COMPLETION_MARK}.", *extra],
                    env=env,
                    cwd=ROOT,
                    log_path=logs / f"{tier}.log",
                )
            )
        for process in started:
            process.wait_until_serving(60)
        yield Tiers(started[0], started[1], logs, secret_file)
    finally:
        for process in started:
            process.stop()


def _start_router(tiers: Tiers, log_prompts: bool, name: str) -> ServiceProcess:
    config = {
        "logging": {"level": "INFO", "json_output": True, "log_prompts": log_prompts},
        "classifier": {"enabled": False},
        "tiers": [
            {
                "name": tier,
                "endpoints": [process.address],
                "input_usd_per_mtok": price[0],
                "output_usd_per_mtok": price[1],
                "timeout_seconds": 10,
            }
            for tier, process, price in (
                ("small", tiers.small, (0.1, 0.2)),
                ("large", tiers.large, (1.0, 2.0)),
            )
        ],
        "tier_auth": {"shared_secret_file": str(tiers.secret_file)},
        "resilience": {"health_check_interval_seconds": 1},
        "auth": {
            "enabled": True,
            "keys": [
                {
                    "tenant": "privacy",
                    "sha256": hash_key(API_KEY),
                    "permissions": {"pin_tier": True, "streaming": True},
                },
                {"tenant": "plain", "sha256": hash_key(PLAIN_KEY)},
            ],
        },
    }
    path = tiers.logs / f"{name}.json"
    path.write_text(json.dumps(config))
    return launch_module(
        "router_svc",
        ["--config", str(path)],
        cwd=ROOT,
        log_path=tiers.logs / f"{name}.log",
        timeout_seconds=60,
    )


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def _text(prompt: str) -> common_pb2.Prompt:
    return common_pb2.Prompt(text=prompt)


def _generate(
    stub: router_service_pb2_grpc.RouterServiceStub,
    request: rpb.RouterServiceGenerateRequest,
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[str, str, bool]:
    """(status code name, completion text kept, escalated) of one Generate call."""
    text, escalated = [], False
    try:
        for event in stub.Generate(request, metadata=metadata, timeout=10):
            kind = event.WhichOneof("event")
            if kind == "delta":
                text.append(event.delta.text)
            elif kind == "escalated":
                text, escalated = [], True
    except grpc.RpcError as error:
        return error.code().name, "", escalated
    return "OK", "".join(text), escalated


def _traffic(router: ServiceProcess) -> dict[str, tuple[str, str, bool]]:
    """Served, escalated, streamed, refused and invalid requests, each carrying the marker."""
    good, plain = _bearer(API_KEY), _bearer(PLAIN_KEY)
    ask = f"What is the capital of France? {PROMPT_MARK}"
    hard = f"Tell me a hard riddle about {PROMPT_MARK}"
    chat = common_pb2.Prompt(
        chat=common_pb2.Chat(
            messages=[
                common_pb2.ChatMessage(
                    role=common_pb2.ROLE_SYSTEM, content=f"Be brief {PROMPT_MARK}"
                ),
                common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ask),
            ]
        )
    )
    streaming = rpb.RouteOptions(fallback_mode=rpb.FALLBACK_MODE_STREAMING)
    G = rpb.RouterServiceGenerateRequest
    with grpc.insecure_channel(router.address) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        outcomes = {
            "served": _generate(stub, G(prompt=_text(ask)), good),
            "chat": _generate(stub, G(prompt=chat), good),
            "escalated": _generate(stub, G(prompt=_text(hard)), good),
            "streamed_escalated": _generate(stub, G(prompt=_text(hard), options=streaming), good),
            "no_key": _generate(stub, G(prompt=_text(ask))),
            "wrong_key": _generate(stub, G(prompt=_text(ask)), _bearer(WRONG_KEY)),
            # The configured digest is not a credential: presenting it does not authenticate.
            "digest_as_key": _generate(stub, G(prompt=_text(ask)), _bearer(hash_key(API_KEY))),
            "forbidden_hint": _generate(
                stub, G(prompt=_text(ask), options=rpb.RouteOptions(tier_hint="large")), plain
            ),
            "invalid_max_tokens": _generate(
                stub,
                G(prompt=_text(ask), sampling=common_pb2.SamplingParams(max_tokens=10**6)),
                good,
            ),
            # Accepted by the router, refused by the model service (empty stop string).
            "invalid_at_tier": _generate(
                stub, G(prompt=_text(ask), sampling=common_pb2.SamplingParams(stop=[""])), good
            ),
            "over_cost": _generate(
                stub, G(prompt=_text(ask), options=rpb.RouteOptions(max_cost_usd=0.0)), good
            ),
        }
        decision = stub.Route(rpb.RouteRequest(prompt=_text(ask)), metadata=good, timeout=10)
        assert decision.decision.tier == "small"
    return outcomes


def _metrics(port: int | None) -> str:
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _scan(sources: dict[str, str], needles: dict[str, str]) -> list[str]:
    """``"<needle> in <source>"`` for every needle found in a source."""
    return [
        f"{needle} in {source}"
        for source, text in sources.items()
        for needle, value in needles.items()
        if value in text
    ]


def test_no_prompt_completion_or_credential_in_logs_or_metrics(tiers: Tiers) -> None:
    router = _start_router(tiers, log_prompts=False, name="router")
    try:
        outcomes = _traffic(router)
        pages = {
            f"{name} /metrics": _metrics(process.metrics_port)
            for name, process in (
                ("router", router),
                ("small", tiers.small),
                ("large", tiers.large),
            )
        }
    finally:
        router.stop()
    codes = {name: outcome[0] for name, outcome in outcomes.items()}
    assert codes == {
        "served": "OK",
        "chat": "OK",
        "escalated": "OK",
        "streamed_escalated": "OK",
        "no_key": "UNAUTHENTICATED",
        "wrong_key": "UNAUTHENTICATED",
        "digest_as_key": "UNAUTHENTICATED",
        "forbidden_hint": "PERMISSION_DENIED",
        "invalid_max_tokens": "INVALID_ARGUMENT",
        "invalid_at_tier": "INVALID_ARGUMENT",
        "over_cost": "FAILED_PRECONDITION",
    }
    # The completion marker reached the caller (so its absence below is not an accident) ...
    assert COMPLETION_MARK in outcomes["served"][1]
    assert outcomes["escalated"][2] and COMPLETION_MARK in outcomes["escalated"][1]
    logs = {f"{n}.log": (tiers.logs / f"{n}.log").read_text() for n in ("router", "small", "large")}
    # ... and the logs hold real records: one request_done per Generate call, tier outcomes.
    done = [line for line in logs["router.log"].splitlines() if '"request_done"' in line]
    assert len(done) == len(outcomes), done
    assert '"generated"' in logs["small.log"] and '"generated"' in logs["large.log"]
    digest = hash_key(API_KEY)
    needles = {
        "prompt marker": PROMPT_MARK,
        "completion marker": COMPLETION_MARK,
        "API key": API_KEY,
        "second API key": PLAIN_KEY,
        "wrong key": WRONG_KEY,
        "key digest": digest,
        "key digest prefix": digest[:12],
        "shared secret": PEER_SECRET,
    }
    assert _scan({**logs, **pages}, needles) == []


def test_log_prompts_option_puts_the_prompt_in_the_log(tiers: Tiers) -> None:
    router = _start_router(tiers, log_prompts=True, name="router-log-prompts")
    try:
        with grpc.insecure_channel(router.address) as channel:
            stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            request = rpb.RouterServiceGenerateRequest(prompt=_text(f"Hello {PROMPT_MARK}"))
            code, text, _ = _generate(stub, request, _bearer(API_KEY))
    finally:
        router.stop()
    assert code == "OK" and COMPLETION_MARK in text
    log = (tiers.logs / "router-log-prompts.log").read_text()
    logged = [json.loads(line) for line in log.splitlines() if '"request_done"' in line]
    assert [record.get("prompt") for record in logged] == [f"Hello {PROMPT_MARK}"]
    # Credentials stay out even then.
    assert _scan({"router log": log}, {"API key": API_KEY, "secret": PEER_SECRET}) == []
