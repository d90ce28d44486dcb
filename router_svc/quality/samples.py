"""Judged samples: one record per shadowed request, and the store that keeps the recent ones.

A :class:`JudgedSample` says how a cheaper tier's answer to one request was judged against the
largest tier, what the router's escalation score was for that answer, what the request cost
and with which probability it was sampled (its ``sample_weight`` is the inverse, so weighted
sums estimate whole-traffic sums). :class:`SampleStore` is the small interface the monitor,
the controller and the score refit read from; :class:`InProcessSampleStore` is the default:
bounded in memory, written to a JSON Lines file on ``close()`` and read back on ``open()``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import structlog

_log = structlog.get_logger("router_svc.quality.samples")


class SampleFormatError(ValueError):
    """A stored or submitted sample is malformed (never retryable: the input is wrong)."""

    retryable = False


@dataclass(frozen=True)
class JudgedSample:
    """One judged request: the cheaper tier's answer, its verdict, scores and costs."""

    request_id: str
    tenant: str
    route: str
    """Route (rule or classifier decision name) the request took."""
    tier: str
    """The cheaper tier whose answer was judged."""
    served_tier: str
    """The tier whose answer the caller got."""
    tiers_tried: tuple[str, ...]
    escalated: bool
    score: float
    """Escalation score the router used for ``tier``'s answer, in [0, 1]."""
    features: Mapping[str, float] = field(hash=False)
    """Raw signals of ``tier``'s answer (and cheap prompt features), by name."""
    routing_score: float | None
    judge: str
    acceptable: bool
    judge_score: float
    """The judge's own score in [0, 1] (e.g. P(acceptable) of the ``llm`` judge)."""
    sample_weight: float
    """Inverse of the probability this request was sampled (>= 1)."""
    served_cost_usd: float
    baseline_cost_usd: float
    """What the same request costs on the largest tier (US dollars)."""
    shadow_cost_usd: float
    judge_cost_usd: float
    time: float
    """When the request finished (unix seconds)."""

    def __post_init__(self) -> None:
        # Validated once here so that every consumer can trust the numbers.
        for name in ("score", "judge_score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SampleFormatError(f"{name} must be in [0, 1], got {value!r}")
        if self.routing_score is not None and not math.isfinite(self.routing_score):
            raise SampleFormatError("routing_score must be finite")
        if not (math.isfinite(self.sample_weight) and self.sample_weight >= 1.0):
            raise SampleFormatError(f"sample_weight must be >= 1, got {self.sample_weight!r}")
        for name in ("served_cost_usd", "baseline_cost_usd", "shadow_cost_usd", "judge_cost_usd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise SampleFormatError(f"{name} must be a finite cost >= 0, got {value!r}")
        features = {str(k): float(v) for k, v in self.features.items()}
        if not all(math.isfinite(v) for v in features.values()):
            raise SampleFormatError("features must be finite numbers")
        # A read-only copy: the dataclass is frozen, its mapping should be too.
        object.__setattr__(self, "features", MappingProxyType(features))
        object.__setattr__(self, "tiers_tried", tuple(self.tiers_tried))

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict (the inverse of :meth:`from_json`)."""
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "route": self.route,
            "tier": self.tier,
            "served_tier": self.served_tier,
            "tiers_tried": list(self.tiers_tried),
            "escalated": self.escalated,
            "score": self.score,
            "features": dict(self.features),
            "routing_score": self.routing_score,
            "judge": self.judge,
            "acceptable": self.acceptable,
            "judge_score": self.judge_score,
            "sample_weight": self.sample_weight,
            "served_cost_usd": self.served_cost_usd,
            "baseline_cost_usd": self.baseline_cost_usd,
            "shadow_cost_usd": self.shadow_cost_usd,
            "judge_cost_usd": self.judge_cost_usd,
            "time": self.time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JudgedSample:
        """Parse :meth:`to_json` output; :class:`SampleFormatError` if malformed."""
        try:
            routing = data["routing_score"]
            features = data["features"]
            if not isinstance(features, Mapping):
                raise SampleFormatError("features must be an object")
            tried = data["tiers_tried"]
            if not isinstance(tried, list | tuple):
                raise SampleFormatError("tiers_tried must be a list")
            return cls(
                request_id=_text(data, "request_id"),
                tenant=_text(data, "tenant"),
                route=_text(data, "route"),
                tier=_text(data, "tier"),
                served_tier=_text(data, "served_tier"),
                tiers_tried=tuple(str(t) for t in tried),
                escalated=_flag(data, "escalated"),
                score=float(data["score"]),
                features={str(k): float(v) for k, v in features.items()},
                routing_score=None if routing is None else float(routing),
                judge=_text(data, "judge"),
                acceptable=_flag(data, "acceptable"),
                judge_score=float(data["judge_score"]),
                sample_weight=float(data["sample_weight"]),
                served_cost_usd=float(data["served_cost_usd"]),
                baseline_cost_usd=float(data["baseline_cost_usd"]),
                shadow_cost_usd=float(data["shadow_cost_usd"]),
                judge_cost_usd=float(data["judge_cost_usd"]),
                time=float(data["time"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SampleFormatError):
                raise
            raise SampleFormatError(f"malformed sample: {exc!r}") from exc

    def dumps(self) -> str:
        """One compact JSON line."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, line: str) -> JudgedSample:
        """Parse one :meth:`dumps` line; :class:`SampleFormatError` if malformed."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SampleFormatError(f"not JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise SampleFormatError("a sample is a JSON object")
        return cls.from_json(data)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise SampleFormatError(f"{key} must be a string")
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise SampleFormatError(f"{key} must be a boolean")
    return value


class SampleStore(Protocol):
    """Where judged samples live; a shared backend for several replicas implements the same."""

    async def add(self, sample: JudgedSample) -> None:
        """Keep ``sample`` (the oldest may be dropped to stay within capacity)."""
        ...

    async def recent(self, limit: int, tier: str | None = None) -> list[JudgedSample]:
        """Up to ``limit`` most recent samples (of ``tier`` if given), oldest first."""
        ...

    async def count(self, tier: str | None = None) -> int:
        """How many samples are held (of ``tier`` if given)."""
        ...

    async def discard(self, request_id: str, judge: str) -> bool:
        """Forget the samples of ``request_id`` judged by ``judge``; True if any were held."""
        ...

    async def close(self) -> None:
        """Flush and release whatever the store holds."""
        ...


class InProcessSampleStore:
    """Bounded in-memory store, persisted to a JSON Lines file on close, reloaded on open."""

    def __init__(self, capacity: int, path: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._path = path
        self._samples: deque[JudgedSample] = deque()
        self._per_tier: Counter[str] = Counter()

    @classmethod
    async def open(cls, capacity: int, path: Path | None = None) -> InProcessSampleStore:
        """A store holding the samples persisted at ``path`` (none if absent or unset)."""
        store = cls(capacity, path)
        if path is not None:
            # File I/O off the event loop: the file may hold many thousand lines.
            loaded = await asyncio.to_thread(_read_lines, path)
            store._extend(loaded)
        return store

    def _extend(self, samples: Iterable[JudgedSample]) -> None:
        for sample in samples:
            self._samples.append(sample)
            self._per_tier[sample.tier] += 1
            if len(self._samples) > self._capacity:
                dropped = self._samples.popleft()
                self._per_tier[dropped.tier] -= 1

    async def add(self, sample: JudgedSample) -> None:
        """Keep ``sample``; beyond capacity the oldest sample is dropped."""
        self._extend((sample,))

    async def recent(self, limit: int, tier: str | None = None) -> list[JudgedSample]:
        """Up to ``limit`` most recent samples (of ``tier`` if given), oldest first."""
        if limit <= 0:
            return []
        picked: list[JudgedSample] = []
        for sample in reversed(self._samples):
            if tier is None or sample.tier == tier:
                picked.append(sample)
                if len(picked) >= limit:
                    break
        picked.reverse()
        return picked

    async def count(self, tier: str | None = None) -> int:
        """How many samples are held (of ``tier`` if given)."""
        return len(self._samples) if tier is None else self._per_tier[tier]

    async def discard(self, request_id: str, judge: str) -> bool:
        """Forget the samples of ``request_id`` judged by ``judge``; True if any were held."""
        kept: deque[JudgedSample] = deque()
        found = False
        for sample in self._samples:
            if sample.request_id == request_id and sample.judge == judge:
                found = True
                self._per_tier[sample.tier] -= 1
            else:
                kept.append(sample)
        self._samples = kept
        return found

    async def close(self) -> None:
        """Write the held samples to the file (atomically: a temporary file, then a rename)."""
        if self._path is not None:
            lines = [s.dumps() for s in self._samples]
            await asyncio.to_thread(_write_lines, self._path, lines)


def _read_lines(path: Path) -> list[JudgedSample]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    samples: list[JudgedSample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(JudgedSample.loads(line))
        except SampleFormatError as exc:
            # One bad line (a torn write, a manual edit) must not cost the rest of the evidence.
            _log.warning("sample_skipped", path=str(path), line=number, error=str(exc))
    return samples


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
