"""The stream evaluation's workflow: tiers, one fresh router per policy, records, the report.

Arms, in order: one per tier, pinned, fallback disabled (run once: the all-largest baseline, and
the pairs the judges are checked on against gold), then every policy of
:mod:`.stream` on a router of its own started for it with a fresh state directory. The tiers
are the ones given (``tier_addresses``) or a preset's, started here with
:class:`~tierroute_tools.platform.LocalPlatform`; the ``fitted`` policy's calibration belongs to
the model services, so with a preset its tiers are started again with it (as environment).

Every finished arm is appended to ``stream.partial.jsonl`` in the output directory with its
snapshots; with ``resume`` a later run over the same items skips the arms found there (a
long run can be finished in parts, e.g. the pinned arms first, a policy later).
Outputs: ``records.jsonl``, ``stream.json`` (:func:`.stream_report.stream_report`),
``stream.md``, ``stream_quality.png``, ``stream_cost.png``, ``stream_thresholds.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierroute_tools.evaluation.live import Arm, LiveItem, LiveRecord, Sampling, write_records
from tierroute_tools.evaluation.live_run import (
    child_environment,
    model_service_env,
    platform_router_config,
    read_yaml_mapping,
)
from tierroute_tools.evaluation.prices import Price
from tierroute_tools.evaluation.stream import (
    LOOP_POLICIES,
    POLICIES,
    STREAM_MAX_TOKENS,
    Log,
    MixedScorer,
    policy_overrides,
    run_stream,
)
from tierroute_tools.evaluation.stream_report import TARGET_PRICE_RATIO, stream_report

PARTIAL = "stream.partial.jsonl"


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class StreamOptions:
    """What a stream evaluation runs."""

    out_dir: Path
    policies: Sequence[str]
    window: int = 25
    sampling: Sampling = field(
        default_factory=lambda: Sampling(STREAM_MAX_TOKENS, stop=(), timeout_seconds=600.0)
    )
    concurrency: int = 2
    preset: str = "pair"
    tier_addresses: Mapping[str, str] | None = None
    """Running tiers, cheapest first (name → host:port); None: start the preset's."""
    tier_prices: Mapping[str, Price] = field(default_factory=dict)
    """Prices of running tiers that override what their ``GetModelInfo`` says."""
    router_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Router settings merged under every policy's (``--router-config``)."""
    fitted_dir: Path | None = None
    """A ``fit-confidence`` output directory; None: fit on the pinned arms (fit half)."""
    quality: Mapping[str, Any] = field(default_factory=dict)
    """Settings of the controller's quality loop over the router's (``--quality``)."""
    price_ratio: float = TARGET_PRICE_RATIO
    settle_seconds: float = 30.0
    resume: bool = False
    sandboxes: int = 2
    seed: int = 0
    title: str = "Stream"


def _quality_fields() -> frozenset[str]:
    """The settings the router's quality section knows (it has grown: ``enabled``, ``warmup``)."""
    from router_svc.quality.settings import QualitySettings

    return frozenset(QualitySettings.model_fields)


def _quality_switch() -> bool:
    """Whether the router's quality section has its ``enabled`` switch."""
    return "enabled" in _quality_fields()


def _base_router_config(
    addresses: Mapping[str, str], prices: Mapping[str, Price], preset: str | None
) -> dict[str, Any]:
    from tierroute_tools.platform import LOCAL_CLASSIFIER_BUDGET_MS, preset_router_overrides

    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "grace_seconds": 5},
        "tiers": [
            {
                "name": name,
                "endpoints": [address],
                "input_usd_per_mtok": prices[name].input_usd_per_mtok,
                "output_usd_per_mtok": prices[name].output_usd_per_mtok,
                "timeout_seconds": 600,
            }
            for name, address in addresses.items()
        ],
        "policy": {"classifier_timeout_ms": LOCAL_CLASSIFIER_BUDGET_MS},
    }
    from tierroute_tools.platform import merge_sections

    return merge_sections(config, preset_router_overrides(preset) if preset else {})


def static_threshold(base: Mapping[str, Any]) -> float:
    """The fallback threshold a router with settings ``base`` ships with."""
    from router_svc.config import PolicySettings

    section = base.get("policy", {})
    known = {k: v for k, v in section.items() if k in PolicySettings.model_fields}
    return float(PolicySettings(**known).fallback_threshold)


@contextlib.contextmanager
def _router(config: Mapping[str, Any], run_dir: Path, log: Log) -> Iterator[str]:
    """A router process with ``config``; yields its address, stops it after."""
    import yaml

    from tierroute.launch import ServiceProcess

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "router.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    process = ServiceProcess("router_svc", ["--config", str(path)], log_path=run_dir / "router.log")
    try:
        process.wait_until_serving(120.0)
        log(f"router for {run_dir.name} serving on {process.address}")
        yield process.address
    finally:
        process.stop()


def _model_prices(addresses: Mapping[str, str]) -> dict[str, Price]:
    import grpc

    from tierroute.v1 import model_service_pb2, model_service_pb2_grpc

    prices = {}
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
            info = stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=10)
        prices[name] = Price(float(info.input_usd_per_mtok), float(info.output_usd_per_mtok))
    return prices


@contextlib.contextmanager
def _tiers(
    options: StreamOptions, model_env: Mapping[str, str], run_dir: Path, log: Log
) -> Iterator[tuple[dict[str, str], dict[str, Price]]]:
    """The tiers' addresses and prices: the given ones, or the preset's started here."""
    if options.tier_addresses is not None:
        if model_env:
            raise ValueError("a fitted calibration needs tiers this command starts (a preset)")
        addresses = dict(options.tier_addresses)
        yield addresses, {**_model_prices(addresses), **options.tier_prices}
        return
    from tierroute_tools.platform import PRESETS, LocalPlatform, PlatformOptions

    platform_options = PlatformOptions(
        run_dir=run_dir,
        tiers=PRESETS[options.preset],
        router_overrides=platform_router_config({}),
        http_port=None,
    )
    with child_environment(model_env), LocalPlatform(platform_options) as platform:
        platform.start(log)
        addresses = {name: process.address for name, process in platform.tiers.items()}
        yield addresses, {name: Price(*p) for name, p in platform.prices.items()}


def _load_partial(path: Path, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Finished arms of an earlier run over the same items (by arm name)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if [r["item_id"] for r in row["records"]] == list(ids):
                done[row["arm"]] = row
    return done


def _save_partial(
    path: Path, arm: str, records: Sequence[LiveRecord], extra: Mapping[str, Any]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"arm": arm, "records": [r.to_json() for r in records], **extra}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def _fitted(
    options: StreamOptions,
    pinned: Sequence[LiveRecord],
    tiers: Sequence[str],
    threshold: float,
    log: Log,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The fitted policy's router settings, model-service settings and where they came from."""
    if options.fitted_dir is not None:
        router = read_yaml_mapping(options.fitted_dir / "router-policy.yaml")
        model_path = options.fitted_dir / "model-confidence.yaml"
        model = read_yaml_mapping(model_path if model_path.exists() else None)
        return router, model, str(options.fitted_dir)
    from model_svc.config import ConfidenceSettings
    from tierroute_tools.evaluation.fit_confidence import fit

    result = fit(
        pinned,
        tiers=tiers,
        base=ConfidenceSettings().params(),
        current_threshold=threshold,
        seed=options.seed,
    )
    result.write(options.out_dir / "fit")
    log("fitted on the pinned arms' fit half: " + "; ".join(result.summary()))
    return result.router_config(), result.model_config(), "pinned arms, fit half (seed split)"


class StreamRun:
    """One stream evaluation: the arms still to run, the routers they run on, the report."""

    def __init__(self, items: Sequence[LiveItem], options: StreamOptions, log: Log) -> None:
        unknown = [p for p in options.policies if p not in POLICIES]
        if unknown or not options.policies:
            raise ValueError(f"policies must be some of {', '.join(POLICIES)}")
        self.items = items
        self.options = options
        self.log = log
        self.out = options.out_dir
        self.partial = self.out / PARTIAL
        self.ids = [item.id for item in items]
        self.out.mkdir(parents=True, exist_ok=True)
        if not options.resume and self.partial.exists():
            self.partial.unlink()
        self.done = _load_partial(self.partial, self.ids) if options.resume else {}
        # Without the loop's switch (older routers) the loop is off by default.
        self.off = {"quality": {"enabled": False}} if _quality_switch() else {}
        self.meta: dict[str, Any] = {"fitted_from": None}
        self.tiers: list[str] = []
        self.prices: dict[str, Price] = {}
        self.threshold = 0.0

    def _config(
        self, addresses: Mapping[str, str], prices: Mapping[str, Price], extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The router's settings: tiers, preset, platform defaults, --router-config, policy."""
        from tierroute_tools.platform import merge_sections

        preset = None if self.options.tier_addresses else self.options.preset
        config = _base_router_config(addresses, prices, preset)
        config = merge_sections(config, platform_router_config(self.options.router_overrides))
        return merge_sections(config, extra)

    def _run_arm(
        self, scorer: MixedScorer, address: str, arm: Arm, configured: Mapping[str, float]
    ) -> None:
        records, snapshots = asyncio.run(
            run_stream(
                address,
                self.items,
                arm,
                window=self.options.window,
                sampling=self.options.sampling,
                scorer=scorer,
                concurrency=self.options.concurrency,
                configured=configured,
                settle_seconds=self.options.settle_seconds,
                log=self.log,
            )
        )
        extra = {
            "snapshots": snapshots,
            "tiers": self.tiers,
            "prices": {
                t: [p.input_usd_per_mtok, p.output_usd_per_mtok] for t, p in self.prices.items()
            },
            "static_threshold": self.threshold,
        }
        self.done[arm.name] = {"records": [r.to_json() for r in records], **extra}
        _save_partial(self.partial, arm.name, records, extra)

    def _policy_extra(self, policy: str, fitted: Mapping[str, Any] | None) -> dict[str, Any]:
        state = self.out / "state" / policy
        shutil.rmtree(state, ignore_errors=True)  # every policy starts from a fresh state
        extra = policy_overrides(
            policy,
            static_threshold=self.threshold,
            fitted=fitted,
            state_dir=state,
            quality=self.options.quality,
        )
        if policy not in LOOP_POLICIES and not self.off:
            extra.pop("quality")
        return extra

    def _shipped(self, scorer: MixedScorer) -> None:
        """Pinned arms, static and controller: the tiers with the shipped calibration."""
        todo = [p for p in self.options.policies if p != "fitted" and p not in self.done]
        known = next(iter(self.done.values()), None)
        if known is not None and not todo and all(t in self.done for t in known["tiers"]):
            self.tiers, self.threshold = list(known["tiers"]), float(known["static_threshold"])
            self.prices = {t: Price(*p) for t, p in known["prices"].items()}
            return
        with _tiers(self.options, {}, self.out / "platform", self.log) as (addresses, prices):
            self.tiers, self.prices = list(addresses), dict(prices)
            self.threshold = static_threshold(self._config(addresses, prices, {}))
            pinned = [t for t in self.tiers if t not in self.done]
            if pinned:
                config = self._config(addresses, prices, self.off)
                with _router(config, self.out / "routers" / "pinned", self.log) as at:
                    for tier in pinned:
                        self._run_arm(scorer, at, Arm(tier, tier, "disabled"), {})
            for policy in todo:
                config = self._config(addresses, prices, self._policy_extra(policy, None))
                configured = {self.tiers[0]: self.threshold} if policy == "static" else {}
                with _router(config, self.out / "routers" / policy, self.log) as at:
                    self._run_arm(scorer, at, Arm(policy, None, None), configured)

    def _fitted(self, scorer: MixedScorer) -> None:
        """The fitted policy: its calibration on (re)started tiers, its threshold."""
        pinned = [LiveRecord.from_json(r) for t in self.tiers for r in self.done[t]["records"]]
        router, model, source = _fitted(self.options, pinned, self.tiers, self.threshold, self.log)
        threshold = float(router["policy"]["fallback_threshold"])
        self.meta.update(fitted_from=source, fitted_threshold=threshold)
        if "fitted" in self.done:
            return
        extra = self._policy_extra("fitted", router)
        env = model_service_env(model)
        with _tiers(self.options, env, self.out / "platform-fitted", self.log) as (
            addresses,
            prices,
        ):
            config = self._config(addresses, prices, extra)
            with _router(config, self.out / "routers" / "fitted", self.log) as at:
                self._run_arm(scorer, at, Arm("fitted", None, None), {self.tiers[0]: threshold})

    def run(self) -> dict[str, Any]:
        """Run the arms still to run, then write the report; returns it."""
        started = time.monotonic()
        scorer = MixedScorer(self.items, self.options.sandboxes)
        try:
            self._shipped(scorer)
            if "fitted" in self.options.policies:
                self._fitted(scorer)
            arms = (*self.tiers, *self.options.policies)
            records = [LiveRecord.from_json(r) for a in arms for r in self.done[a]["records"]]
            from tierroute_tools.evaluation.stream_judges import judge_agreement

            judges = asyncio.run(
                judge_agreement(self.items, records, self.tiers[0], self.tiers[-1])
            )
        finally:
            scorer.close()
        policies = list(self.options.policies)
        snapshots = {p: self.done[p]["snapshots"] for p in policies}
        report = stream_report(
            self.ids,
            records,
            self.tiers,
            policies,
            snapshots,
            self.prices,
            judges,
            window=self.options.window,
            price_ratio=self.options.price_ratio,
        )
        report["meta"] = {
            **self.meta,
            "static_threshold": self.threshold,
            "preset": None if self.options.tier_addresses else self.options.preset,
            "max_tokens": self.options.sampling.max_tokens,
            "concurrency": self.options.concurrency,
            "router_overrides": dict(self.options.router_overrides),
            "controller_quality": dict(self.options.quality),
            "seconds": time.monotonic() - started,
            "snapshots": snapshots,
        }
        write_stream_outputs(report, records, self.out, self.options.title)
        return report


def run_stream_evaluation(
    items: Sequence[LiveItem], options: StreamOptions, log: Log = _quiet
) -> dict[str, Any]:
    """Run every arm (resuming finished ones), then write the report; returns it."""
    return StreamRun(items, options, log).run()


def write_stream_outputs(
    report: Mapping[str, Any], records: Sequence[LiveRecord], out: Path, title: str = "Stream"
) -> None:
    """``records.jsonl``, ``stream.json``, ``stream.md`` and the three plots."""
    from tierroute_tools.evaluation.stream_plots import stream_plots
    from tierroute_tools.evaluation.stream_tables import stream_markdown

    write_records(out / "records.jsonl", records)
    (out / "stream.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "stream.md").write_text(stream_markdown(report, title), encoding="utf-8")
    stream_plots(report, out, title)
