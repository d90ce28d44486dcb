"""Stream pieces with fakes: items, policies' router settings, snapshots, judges vs gold,
the ordered windowed run (a scripted router client), Markdown and plots."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tierroute.judges import Verdict
from tierroute_tools.evaluation import stream
from tierroute_tools.evaluation.live import CODE, LiveItem, LiveRecord, Sampling
from tierroute_tools.evaluation.stream_judges import agreement_table, judge_agreement


def test_read_stream_items_keeps_code_tasks_and_order(tmp_path: Path) -> None:
    path = tmp_path / "mix.jsonl"
    rows = [
        {"id": "a", "prompt": "What is 2+2?", "answer": "4", "kind": "number", "source": "s"},
        {"id": "HumanEval/0", "prompt": "Write it.", "answer": "", "kind": "code"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = stream.read_stream_items(path)
    assert [(i.id, i.kind, i.answer) for i in items] == [
        ("a", "number", "4"),
        ("HumanEval/0", CODE, ""),
    ]
    assert stream.read_stream_items(path, limit=1) == items[:1]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:1]), encoding="utf-8")
    with pytest.raises(ValueError, match="unique"):
        stream.read_stream_items(path)


def test_policy_overrides(tmp_path: Path) -> None:
    static = stream.policy_overrides(
        "static", static_threshold=0.65, fitted=None, state_dir=tmp_path
    )
    assert static == {"quality": {"enabled": False}, "policy": {"fallback_threshold": 0.65}}
    fitted = stream.policy_overrides(
        "fitted",
        static_threshold=0.65,
        fitted={"policy": {"fallback_threshold": 0.4}},
        state_dir=tmp_path,
    )
    assert fitted["policy"] == {"fallback_threshold": 0.4}
    controller = stream.policy_overrides(
        "controller",
        static_threshold=0.65,
        fitted=None,
        state_dir=tmp_path / "c",
        quality={"min_samples": 5},
    )
    quality = controller["quality"]
    assert quality["enabled"] is True and quality["start_threshold"] == 0.65
    assert quality["min_samples"] == 5
    assert Path(quality["store_path"]).parent == tmp_path / "c"
    assert controller["judges"]["default"] == "agreement"
    assert set(controller["judges"]["routes"].values()) == {"code"}
    assert "start_tier" not in controller
    learned = stream.policy_overrides(
        "learned-start", static_threshold=0.65, fitted=None, state_dir=tmp_path / "l"
    )
    assert learned["quality"]["enabled"] is True  # the same escalation policy as controller
    assert learned["start_tier"]["enabled"] is True and learned["start_tier"]["reset"] is True
    assert Path(learned["start_tier"]["state_path"]).parent == tmp_path / "l"
    with pytest.raises(ValueError):
        stream.policy_overrides("fitted", static_threshold=0.6, fitted=None, state_dir=tmp_path)
    with pytest.raises(ValueError):
        stream.policy_overrides("oracle", static_threshold=0.6, fitted=None, state_dir=tmp_path)


def _reply(enabled: bool) -> Any:
    overall = SimpleNamespace(samples=7, estimate=0.97, lower_bound=0.9)
    return SimpleNamespace(
        enabled=enabled,
        overall=overall,
        shadow_cost_usd=0.25,
        judge_cost_usd=0.05,
        thresholds=[SimpleNamespace(tier="small", value=0.8, samples=6)],
        judges=[SimpleNamespace(judge="agreement", samples=7, acceptable=5)],
    )


def test_snapshot_of_reads_the_loop_or_keeps_the_configured_threshold() -> None:
    on = stream.snapshot_of(_reply(True), {"small": 0.65})
    assert on["samples"] == 7 and on["thresholds"] == {"small": 0.8}
    assert on["shadow_cost_usd"] == 0.25 and on["judge_cost_usd"] == 0.05
    assert on["judges"] == {"agreement": {"samples": 7, "acceptable": 5}}
    off = stream.snapshot_of(_reply(False), {"small": 0.65})
    assert off["samples"] == 0 and off["thresholds"] == {"small": 0.65}
    assert off["shadow_cost_usd"] == 0.0


def test_agreement_table_counts_decided_cases_only() -> None:
    table = agreement_table(
        [
            ("agreement", True, True),
            ("agreement", True, False),
            ("code", None, True),
            ("code", False, False),
        ]
    )
    assert table["cases"] == 4 and table["decided"] == 3
    assert table["agreement_with_gold"] == pytest.approx(2 / 3)
    assert table["false_accepts"] == 1 and table["false_rejects"] == 0
    assert table["by_judge"]["code"]["coverage"] == 0.5
    assert agreement_table([])["agreement_with_gold"] is None


def _rec(arm: str, item: str, text: str, correct: bool) -> LiveRecord:
    return LiveRecord(item, arm, "s", "", text, None, correct)


async def test_judge_agreement_runs_the_kinds_judge_on_answer_pairs() -> None:
    items = [
        LiveItem("n1", "What is 2+2?", "4", "number"),
        LiveItem("n2", "What is 3+3?", "6", "number"),
        LiveItem("c1", "Write f.", "", CODE),
    ]
    records = [
        _rec("small", "n1", "It is 4.", True),
        _rec("large", "n1", "2+2 = 4", True),
        _rec("small", "n2", "It is 5.", False),
        _rec("large", "n2", "3+3 = 6", True),
        _rec("small", "c1", "code", False),
        _rec("large", "c1", "code", True),
    ]
    seen: list[str] = []

    class Fixed:
        name = "code"

        async def judge(self, case: Any) -> Verdict:
            seen.append(case.candidate)
            return Verdict(acceptable=True, score=1.0, judge="code", reason="fake")

    from tierroute.judges import AgreementJudge

    table = await judge_agreement(
        items, records, "small", "large", {"agreement": AgreementJudge(), "code": Fixed()}
    )
    assert seen == ["code"]
    assert table["by_judge"]["agreement"]["agreement_with_gold"] == 1.0
    assert table["by_judge"]["code"]["false_accepts"] == 1
    assert table["agreement_with_gold"] == pytest.approx(2 / 3)


class _Finished:
    def __init__(self, tier: str) -> None:
        self.tier = tier


class _FakeRouter:
    """Answers every prompt with its number; counts GetQuality calls between requests."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.samples = 0

    async def __aenter__(self) -> _FakeRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def complete(self, prompt: Any, **kwargs: Any) -> Any:
        assert isinstance(prompt, list) and prompt[0][0] == "user"  # chat form
        self.log.append(prompt[0][1])
        self.samples += 1
        return SimpleNamespace(text=prompt[0][1])

    async def get_quality(self) -> Any:
        self.log.append("quality")
        reply = _reply(True)
        reply.overall.samples = self.samples
        return reply


async def test_run_stream_goes_window_by_window(monkeypatch: pytest.MonkeyPatch) -> None:
    router = _FakeRouter()
    monkeypatch.setattr(stream, "Router", lambda *a, **k: router)

    def fake_record(
        item: LiveItem, arm: Any, completion: Any, seconds: float, score: Any
    ) -> LiveRecord:
        return _rec(arm.name, item.id, completion.text, score.correct)

    monkeypatch.setattr(stream, "record_of", fake_record)

    class Scorer:
        async def score(self, item: LiveItem, text: str) -> Any:
            return SimpleNamespace(correct=text.endswith("1"))

    items = [LiveItem(f"q{k}", f"prompt {k}", "1", "number") for k in range(5)]
    records, snapshots = await stream.run_stream(
        "addr",
        items,
        stream.Arm("static", None, None),
        window=2,
        sampling=Sampling(),
        scorer=Scorer(),
        concurrency=1,
        settle_seconds=0.0,
    )
    assert [r.item_id for r in records] == [f"q{k}" for k in range(5)]
    assert [r.correct for r in records] == [False, True, False, False, False]
    assert [s["samples"] for s in snapshots] == [2, 4, 5]
    # No request of a window starts before the previous window's reading.
    assert router.log[:3] == ["prompt 0", "prompt 1", "quality"]
    assert router.log[router.log.index("prompt 2") - 1] == "quality"


def _parse(argv: list[str]) -> Any:
    import argparse

    from tierroute_tools.commands import eval as eval_command

    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["eval", "live", *argv])


def test_the_command_parses_stream_options_and_refuses_a_shared_router(tmp_path: Path) -> None:
    from tierroute_tools.commands.eval import _settings, _tier_addresses

    args = _parse(["d.jsonl", "--policy", "static", "--policy", "controller", "--window", "10"])
    assert args.policy == ["static", "controller"] and args.window == 10
    assert _settings(["initial_rate=0.5", "refit_every=10"]) == {
        "initial_rate": 0.5,
        "refit_every": 10,
    }
    assert _tier_addresses(["small=h:1", "large=h:2"]) == {"small": "h:1", "large": "h:2"}
    with pytest.raises(ValueError):
        _settings(["initial_rate"])
    refused = _parse(["d.jsonl", "--policy", "static", "--router", "h:1"])
    refused.out_dir = tmp_path
    assert refused.func(refused) == 1
