"""The live workflow behind ``tierroute eval live``: run the arms, write records and the report.

It talks to a running router (``--router ADDR``), or starts the embedded platform itself
(:class:`tierroute.platform.LocalPlatform`) and stops it afterwards. Outputs in the output
directory: ``records.jsonl`` (one row per item and arm), ``live.json`` (the summary of
:mod:`tierroute.evaluation.live_report`), ``live.md`` and two PNGs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tierroute.client import Router
from tierroute.evaluation import plots, tables
from tierroute.evaluation.live import (
    LARGE,
    SMALL,
    Arm,
    LiveItem,
    LiveRecord,
    Sampling,
    run_arm,
    write_records,
)
from tierroute.evaluation.live_report import summarise

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
    progress: bool = True,
    log: Log = _quiet,
) -> list[LiveRecord]:
    """Every arm over every item, one arm after the other (so arms do not compete)."""
    records: list[LiveRecord] = []
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
    return records


def _bar(total: int, name: str, *, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=f"arm {name}", unit="item", leave=False, disable=not enabled)


def _tick(bar: Any, record: LiveRecord) -> None:
    del record
    bar.update(1)


def platform_router_config(overrides: Mapping[str, object]) -> dict[str, object]:
    """``PLATFORM_ROUTER_DEFAULTS`` with ``overrides`` merged over them (section by section)."""
    merged: dict[str, object] = {
        key: dict(value) for key, value in PLATFORM_ROUTER_DEFAULTS.items()
    }
    for key, value in overrides.items():
        section = merged.get(key)
        if isinstance(section, dict) and isinstance(value, Mapping):
            section.update(value)
        else:
            merged[key] = value
    return merged


@contextlib.contextmanager
def platform_address(
    run_dir: Path,
    router_overrides: Mapping[str, object],
    log: Log = _quiet,
) -> Iterator[str]:
    """Start the embedded platform (tiers + router) and yield the router's address."""
    from tierroute.platform import LocalPlatform, PlatformOptions

    merged: dict[str, object] = {
        key: dict(value) for key, value in PLATFORM_ROUTER_DEFAULTS.items()
    }
    for key, value in router_overrides.items():
        section = merged.get(key)
        if isinstance(section, dict) and isinstance(value, Mapping):
            section.update(value)
        else:
            merged[key] = value
    options = PlatformOptions(run_dir=run_dir, router_overrides=merged, http_port=None)
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
    from tierroute.evaluation.fit_confidence import split_ids

    if half not in ("fit", "report"):
        raise ValueError("half must be 'fit' or 'report'")
    flags = split_ids([item.id for item in items], seed)
    return [item for item, in_fit in zip(items, flags, strict=True) if in_fit == (half == "fit")]


def live_markdown(report: Mapping[str, Any]) -> str:
    """Tables of the live summary."""
    header = (
        "arm",
        "items",
        "accuracy",
        "cost vs always-large",
        "escalation rate (causes)",
        "decided by",
        "served by",
        "small errors caught",
        "needless escalations",
    )
    rows = []
    for name, arm in report["arms"].items():
        cascade = arm.get("cascade", {})
        served = ", ".join(f"{tier} {count}" for tier, count in arm["served"].items())
        decided = ", ".join(f"{reason} {count}" for reason, count in arm["reasons"].items())
        causes = ", ".join(f"{c} {n}" for c, n in arm.get("escalations_by_cause", {}).items())
        rows.append(
            [
                name,
                str(arm["n"]),
                tables.pct(arm["accuracy"]),
                tables.pct(arm["cost_vs_always_large"]),
                tables.pct(arm["escalation_rate"]) + (f" ({causes})" if causes else ""),
                decided,
                served,
                tables.pct(cascade.get("small_errors_caught")),
                tables.pct(cascade.get("needless_escalations")),
            ]
        )
    lines = [tables.table(header, rows), ""]
    if "confidence_auroc" in report:
        signals = ", ".join(
            f"{name} {tables.num(value)}" for name, value in report["signal_auroc"].items()
        )
        oracle = report["oracle_cascade"]
        lines += [
            f"Small-tier confidence AUROC (predicting its own correctness): "
            f"{tables.num(report['confidence_auroc'])}; raw statistics: {signals}.",
            "",
            f"Oracle cascade (escalating exactly the small tier's errors): accuracy "
            f"{tables.pct(oracle['accuracy'])} at {tables.pct(oracle['relative_cost'])} of the "
            f"always-large cost.",
            "",
        ]
    return "\n".join(lines)


def write_live_outputs(
    records: Sequence[LiveRecord],
    out_dir: Path,
    *,
    title: str,
    fallback_threshold: float | None,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Records, summary JSON, Markdown and plots; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_records(out_dir / "records.jsonl", records)
    report = summarise(records, fallback_threshold=fallback_threshold)
    report["meta"] = dict(meta)
    (out_dir / "live.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "live.md").write_text(live_markdown(report), encoding="utf-8")
    if "simulated_sweep" in report:
        large_cost = report["arms"][LARGE]["cost_usd"] or 1.0
        points = {
            f"{name} (measured)": (arm["cost_usd"] / large_cost, arm["accuracy"])
            for name, arm in report["arms"].items()
        }
        plots.cascade_curve(
            report["simulated_sweep"], points, out_dir / "cascade.png", f"{title}: cascade"
        )
        small = {r.item_id: r for r in records if r.arm == SMALL and r.error is None}
        large_ids = {r.item_id for r in records if r.arm == LARGE and r.error is None}
        paired = [small[i] for i in small if i in large_ids]
        curves = {
            f"confidence (AUROC {tables.num(report['confidence_auroc'])})": (
                [r.confidence or 0.0 for r in paired],
                [r.correct for r in paired],
            ),
            "mean log-prob": (
                [r.stats.get("mean_logprob", 0.0) for r in paired],
                [r.correct for r in paired],
            ),
        }
        if report["confidence_auroc"] is not None:
            plots.roc_curve(curves, out_dir / "confidence_roc.png", f"{title}: small-tier ROC")
    return report


def run_live(
    items: Sequence[LiveItem],
    arms: Sequence[Arm],
    out_dir: Path,
    *,
    address: str | None,
    sampling: Sampling,
    concurrency: int,
    router_overrides: Mapping[str, object] | None = None,
    fallback_threshold: float | None = None,
    title: str = "Live",
    log: Log = _quiet,
) -> dict[str, Any]:
    """Run against ``address``, or start the embedded platform when it is ``None``."""
    started = time.monotonic()
    meta: dict[str, Any] = {
        "items": len(items),
        "arms": [arm.name for arm in arms],
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop),
        "concurrency": concurrency,
        "router_overrides": dict(router_overrides or {}),
    }
    if address is not None:
        records = asyncio.run(
            run_arms(address, items, arms, sampling=sampling, concurrency=concurrency, log=log)
        )
    else:
        with platform_address(out_dir / "platform", router_overrides or {}, log) as started_at:
            records = asyncio.run(
                run_arms(
                    started_at, items, arms, sampling=sampling, concurrency=concurrency, log=log
                )
            )
    meta["seconds"] = time.monotonic() - started
    return write_live_outputs(
        records, out_dir, title=title, fallback_threshold=fallback_threshold, meta=meta
    )
