"""The live workflow behind ``tierroute eval live``: run the arms, write records and the report.

It talks to a running router (``--router ADDR``; the tier chain is then the router's
``ListTiers``), or starts the embedded platform itself with a preset of
:data:`~tierroute_tools.platform.PRESETS` (:class:`~tierroute_tools.platform.LocalPlatform`)
and stops it afterwards. Outputs in the output directory: ``records.jsonl`` (one row per item
and arm), ``live.json`` (the summary of :mod:`.live_report`), ``live.md``,
``cascade.png`` and ``confidence_roc.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tierroute.client import Router
from tierroute_tools.evaluation import chain as chains
from tierroute_tools.evaluation import plots, tables
from tierroute_tools.evaluation.live import (
    Arm,
    LiveItem,
    LiveRecord,
    Sampling,
    Scorer,
    chain_arms,
    run_arm,
    write_records,
)
from tierroute_tools.evaluation.live_report import STAT_SIGNALS, summarise
from tierroute_tools.evaluation.tables import live_markdown

__all__ = [
    "child_environment",
    "list_tiers",
    "live_markdown",
    "model_service_env",
    "platform_router_config",
    "read_yaml_mapping",
    "resolve_chain",
    "run_arms",
    "run_live",
    "select_half",
    "write_live_outputs",
]

Log = Callable[[str], None]
PLATFORM_ROUTER_DEFAULTS: Mapping[str, Mapping[str, object]] = {
    # On a busy 2-core machine the router's 1 s health checks of the tiers time out now and
    # then and open a tier's circuit, which escalates requests for a tier error. A live run
    # measures routing, not that, so its own platform waits longer; --router-config overrides.
    "resilience": {"health_check_timeout_seconds": 5.0},
}


def _quiet(message: str) -> None:
    del message


async def run_arms(
    address: str,
    items: Sequence[LiveItem],
    arms: Sequence[Arm],
    *,
    sampling: Sampling,
    concurrency: int,
    scorer: Scorer | None = None,
    progress: bool = True,
    checkpoint: Path | None = None,
    log: Log = _quiet,
) -> list[LiveRecord]:
    """Every arm over every item, one arm after the other (so arms do not compete).

    With ``checkpoint``, each finished arm's records are appended there as JSONL, so a run
    that fails late keeps the arms it finished.
    """
    records: list[LiveRecord] = []
    if checkpoint is not None:
        _append(checkpoint, (), fresh=True)
    async with Router(address, timeout=sampling.timeout_seconds) as router:
        for arm in arms:
            bar = _bar(len(items), arm.name, enabled=progress)
            started = time.monotonic()
            try:
                done = await run_arm(
                    router,
                    items,
                    arm,
                    sampling=sampling,
                    concurrency=concurrency,
                    scorer=scorer,
                    on_done=functools.partial(_tick, bar),
                )
            finally:
                bar.close()
            right = sum(r.correct for r in done)
            log(
                f"arm {arm.name}: {right}/{len(done)} right, "
                f"{sum(r.error is not None for r in done)} errors, "
                f"{time.monotonic() - started:.0f} s"
            )
            records.extend(done)
            if checkpoint is not None:
                _append(checkpoint, done)
    return records


def _append(path: Path, records: Sequence[LiveRecord], *, fresh: bool = False) -> None:
    """Append records as JSONL (a few kilobytes: not worth a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w" if fresh else "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r.to_json()) + "\n" for r in records)


def _bar(total: int, name: str, *, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=f"arm {name}",
        unit="item",
        leave=True,
        disable=not enabled,
        file=sys.stderr,
    )


def _tick(bar: Any, record: LiveRecord) -> None:
    del record
    bar.update(1)


def platform_router_config(overrides: Mapping[str, object]) -> dict[str, object]:
    """``PLATFORM_ROUTER_DEFAULTS`` with ``overrides`` merged over them (section by section)."""
    from tierroute_tools.platform import merge_sections

    defaults = {key: dict(value) for key, value in PLATFORM_ROUTER_DEFAULTS.items()}
    return merge_sections(defaults, overrides)


async def list_tiers(address: str, timeout: float = 10.0) -> list[str]:
    """The router's tier names, cheapest first (``ListTiers``)."""
    import grpc

    from tierroute.v1 import router_service_pb2, router_service_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = await stub.ListTiers(router_service_pb2.ListTiersRequest(), timeout=timeout)
    return [tier.name for tier in reply.tiers]


def resolve_chain(available: Sequence[str], chain: Sequence[str] | None) -> tuple[str, ...]:
    """The chain to evaluate: all of ``available`` (cheapest first), or ``chain`` when it is
    a suffix of it (the router's cascade from its first tier climbs exactly those tiers)."""
    tiers = tuple(available)
    if not chain:
        return tiers
    wanted = tuple(chain)
    if len(wanted) < 2 or tiers[len(tiers) - len(wanted) :] != wanted:
        raise ValueError(
            f"--chain {','.join(wanted)} must be the last tiers of the router's chain "
            f"{','.join(tiers)} (at least two)"
        )
    return wanted


@contextlib.contextmanager
def platform_address(
    run_dir: Path,
    router_overrides: Mapping[str, object],
    preset: str = "pair",
    log: Log = _quiet,
) -> Iterator[str]:
    """Start the embedded platform (``preset``'s tiers + router) and yield the router's address."""
    from tierroute_tools.platform import PRESETS, LocalPlatform, PlatformOptions

    options = PlatformOptions(
        run_dir=run_dir,
        tiers=PRESETS[preset],
        router_overrides=platform_router_config(router_overrides),
        http_port=None,
    )
    with LocalPlatform(options) as platform:
        platform.start(log)
        yield platform.router_address


def read_yaml_mapping(path: Path | None) -> dict[str, Any]:
    """A YAML file's top-level mapping (``{}`` for no file)."""
    import yaml

    if path is None:
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return loaded


@contextlib.contextmanager
def child_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the child processes started inside, then restore them.

    Only the command line's composition root uses this: the model services the embedded
    platform starts inherit this process's environment, and read their settings from it.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous


def model_service_env(config: Mapping[str, Any]) -> dict[str, str]:
    """A model-service YAML mapping as ``TIERROUTE_<SECTION>__<FIELD>`` environment variables.

    The embedded platform starts the model services as child processes that read their
    settings from the environment, so this is how a fitted ``confidence:`` section reaches them.
    """
    env = {}
    for section, values in config.items():
        if isinstance(values, Mapping):
            for key, value in values.items():
                env[f"TIERROUTE_{section.upper()}__{str(key).upper()}"] = str(value)
        else:
            env[f"TIERROUTE_{section.upper()}"] = str(values)
    return env


def select_half(items: Sequence[LiveItem], half: str, seed: int) -> list[LiveItem]:
    """The ``fit`` or ``report`` half of ``items``, split as ``fit-confidence`` splits them."""
    from tierroute_tools.evaluation.fit_confidence import split_ids

    if half not in ("fit", "report"):
        raise ValueError("half must be 'fit' or 'report'")
    flags = split_ids([item.id for item in items], seed)
    return [item for item, in_fit in zip(items, flags, strict=True) if in_fit == (half == "fit")]


def write_live_outputs(
    records: Sequence[LiveRecord],
    out_dir: Path,
    *,
    title: str,
    fallback_threshold: float | None,
    meta: Mapping[str, Any],
    tiers: Sequence[str] = ("small", "large"),
    seed: int = 0,
) -> dict[str, Any]:
    """Records, summary JSON, Markdown and plots; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_records(out_dir / "records.jsonl", records)
    report = summarise(records, fallback_threshold=fallback_threshold, tiers=tiers, seed=seed)
    report["meta"] = dict(meta)
    (out_dir / "live.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "live.md").write_text(live_markdown(report), encoding="utf-8")
    if "simulated_sweep" in report:
        _plots(report, records, tuple(tiers), out_dir, title)
    return report


def _plots(
    report: Mapping[str, Any],
    records: Sequence[LiveRecord],
    tiers: tuple[str, ...],
    out_dir: Path,
    title: str,
) -> None:
    chain = chains.Chain.from_records(records, tiers)
    sweep = report["simulated_sweep"]
    random = []
    for point in sweep:
        expected = chains.random_point(chain, point["served_share"])
        random.append((expected["relative_cost"], expected["accuracy"]))
    large_cost = report["arms"][tiers[-1]]["cost_usd"] or 1.0
    points = {
        f"{name} (measured)": (arm["cost_usd"] / large_cost, arm["accuracy"])
        for name, arm in report["arms"].items()
    }
    code = any(r.status is not None for r in records)
    plots.cascade_curve(
        sweep,
        points,
        out_dir / "cascade.png",
        f"{title}: cascade over {' > '.join(tiers)}",
        random=random,
        ylabel="pass@1 (tests passed)" if code else "accuracy (exact match)",
    )
    curves = {}
    signs = {"confidence": 1, **STAT_SIGNALS}
    for k, tier in enumerate(tiers[:-1]):
        labels = [bool(x) for x in chain.ok[k]]
        if all(labels) or not any(labels):
            continue
        aurocs = report["signal_auroc_by_tier"][tier]
        for name in ("confidence", "mean_logprob", "min_window_logprob", "low_prob_fraction"):
            values = chain.confidence[k] if name == "confidence" else chain.stats[name][k]
            label = f"{tier}: {name} (AUROC {tables.num(aurocs[name])})"
            curves[label] = ([float(signs[name] * v) for v in values], labels)
    if curves:
        plots.roc_curve(curves, out_dir / "confidence_roc.png", f"{title}: confidence ROC")


def run_live(
    items: Sequence[LiveItem],
    out_dir: Path,
    *,
    address: str | None,
    sampling: Sampling,
    concurrency: int,
    preset: str = "pair",
    chain: Sequence[str] | None = None,
    arm_names: Sequence[str] | None = None,
    scorer: Scorer | None = None,
    router_overrides: Mapping[str, object] | None = None,
    fallback_threshold: float | None = None,
    title: str = "Live",
    seed: int = 0,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Run against ``address``, or start the embedded platform (``preset``) when it is ``None``.

    ``arm_names`` picks arms of :func:`tierroute_tools.evaluation.live.chain_arms` (default: all);
    ``chain`` restricts the tiers (see :func:`resolve_chain`).
    """
    started = time.monotonic()

    def pick(tiers: tuple[str, ...]) -> list[Arm]:
        every = chain_arms(tiers, fallback_threshold)
        unknown = [name for name in arm_names or () if name not in every]
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(every)}")
        return [every[name] for name in arm_names or every]

    async def session(target: str, available: Sequence[str] | None) -> tuple[Any, ...]:
        tiers = resolve_chain(available or await list_tiers(target), chain)
        arms = pick(tiers)
        log(f"tiers {' > '.join(tiers)}; arms {', '.join(a.name for a in arms)}")
        done = await run_arms(
            target,
            items,
            arms,
            sampling=sampling,
            concurrency=concurrency,
            scorer=scorer,
            checkpoint=out_dir / "records.partial.jsonl",
            log=log,
        )
        return tiers, arms, done

    if address is not None:
        tiers, arms, records = asyncio.run(session(address, None))
    else:
        from tierroute_tools.platform import PRESETS

        names = [tier.name for tier in PRESETS[preset]]
        pick(resolve_chain(names, chain))  # fail before starting engines
        with platform_address(out_dir / "platform", router_overrides or {}, preset, log) as at:
            tiers, arms, records = asyncio.run(session(at, names))
    meta: dict[str, Any] = {
        "items": len(items),
        "tiers": list(tiers),
        "preset": preset if address is None else None,
        "arms": [arm.name for arm in arms],
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop),
        "concurrency": concurrency,
        "fallback_threshold": fallback_threshold,
        "router_overrides": dict(router_overrides or {}),
        "seconds": time.monotonic() - started,
    }
    return write_live_outputs(
        records,
        out_dir,
        title=title,
        fallback_threshold=fallback_threshold,
        meta=meta,
        tiers=tiers,
        seed=seed,
    )
