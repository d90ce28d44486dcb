"""The README's and docs' headline figures equal the committed results in ``bench/results/``.

Each figure quoted in a headline (the README's "What it measures", the evaluation headline,
the benchmark sections they point to) is formatted here from the JSON it comes from and must
appear, as written, in every document that quotes it. A new run that changes a figure fails
this test until the documents say what the new JSON says; a figure with no JSON behind it
does not belong in a headline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "bench" / "results"
README = "README.md"
BENCHMARKS = "docs/benchmarks.md"
EVALUATION = "docs/evaluation.md"
CLASSIFIER = "docs/classifier.md"
DASH = "\u2013"  # the documents' en dash in ranges
TIMES = "\u00d7"  # and their multiplication sign


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text(encoding="utf-8"))
    return data


def _text(document: str) -> str:
    # Line breaks inside a paragraph are not part of a figure.
    return " ".join((ROOT / document).read_text(encoding="utf-8").split())


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _signed(value: float) -> str:
    return f"{value:+.2f} ms"


def _replay_figures() -> list[tuple[str, str]]:
    replay = _load("replay_test_split.json")
    shipped = replay["policies"]["classifier"]
    headline = (
        f"APGR {shipped['apgr']:.3f} (random 0.5), CPT(50%) {_pct(shipped['cpt50'])}, "
        f"CPT(80%) {_pct(shipped['cpt80'])}, and keeps {_pct(shipped['cost_reduction_at_95'])} "
        "of calls off the strong model at 95% of its quality"
    )
    threshold = f"threshold {replay['classifier']['threshold']:.4f}"
    row = (
        f"| classifier | **{shipped['apgr']:.3f}** | **{_pct(shipped['cpt50'])}** | "
        f"**{_pct(shipped['cpt80'])}** | **{_pct(shipped['cost_reduction_at_95'])}** | "
        f"{_pct(shipped['cost_reduction_at_95_priced'])} |"
    )
    per_benchmark = replay["by_benchmark"]
    parts = (
        f"{_pct(shipped['cost_reduction_at_95'])} (MMLU part "
        f"{_pct(per_benchmark['mmlu']['policies']['classifier']['cost_reduction_at_95'])}, "
        f"GSM8K part "
        f"{_pct(per_benchmark['gsm8k']['policies']['classifier']['cost_reduction_at_95'])})"
    )
    card = (
        f"| test, {replay['n']:,} prompts | {shipped['auroc']:.3f} | {shipped['apgr']:.3f} | "
        f"{_pct(shipped['cpt50'])} | "
        f"{_pct(shipped['cpt80'])} | {_pct(shipped['cost_reduction_at_95'])} |"
    )
    return [
        (README, headline),
        (
            EVALUATION,
            f"| Held-out test split ({replay['n']:,} prompts): APGR | {shipped['apgr']:.3f} |",
        ),
        (
            EVALUATION,
            f"| CPT(50%) / CPT(80%) | {_pct(shipped['cpt50'])} / {_pct(shipped['cpt80'])} |",
        ),
        (EVALUATION, parts),
        (EVALUATION, threshold),
        (EVALUATION, row),
        (CLASSIFIER, card),
        (CLASSIFIER, f"At the calibrated threshold ({replay['classifier']['threshold']:.4f})"),
    ]


def _router_figures() -> list[tuple[str, str]]:
    rules = _load("router_overhead.json")["rules"]
    sentence = (
        f"with rules only the router adds {_signed(rules['added_ttft_p50_ms'])} TTFT p50 and "
        f"{_signed(rules['added_ttft_p99_ms'])} p99 (the bare extra gRPC hop alone: "
        f"{_signed(rules['proxy_added_ttft_p50_ms'])} p50)"
    )
    row = (
        f"| 8 tokens, classifier off ({_load('router_overhead.json')['date'][:10]}) | "
        f"{_signed(rules['added_ttft_p50_ms'])[:-3]} / {_signed(rules['added_ttft_p99_ms'])[:-3]} |"
    )
    figures = [(README, sentence), (BENCHMARKS, row)]
    classifier = _load("router_overhead.json").get("minilm")
    if classifier is not None:
        figures.append(
            (
                README,
                f"with MiniLM the router added {_signed(classifier['added_ttft_p50_ms'])} TTFT "
                f"p50 and {_signed(classifier['added_ttft_p99_ms'])} p99",
            )
        )
    return figures


def _model_figures() -> list[tuple[str, str]]:
    runs = _load("model_svc_overhead.json")["runs"]
    medians = [ratio for run in runs for ratio in run["tok_s_ratio"].values()]
    # The quieter run: the lowest mean of the load averages at its start and end.
    quiet = min(
        runs, key=lambda run: run["run"]["load_average_start"] + run["run"]["load_average_end"]
    )
    quiet_ratios = quiet["tok_s_ratio"].values()
    deltas = [delta for run in runs for delta in run["ttft_p50_delta_ms"].values()]
    sentence = (
        f"streams at {min(medians):.2f}{DASH}{max(medians):.2f}{TIMES} vLLM's own server's "
        f"tokens/s (per-level medians of {len(runs)} runs, {min(quiet_ratios):.2f}{DASH}"
        f"{max(quiet_ratios):.2f}{TIMES} on the quieter one), with TTFT p50 within "
        f"+{max(deltas):.0f} ms"
    )
    return [(README, sentence), (BENCHMARKS, sentence)]


def _openai_figures() -> list[tuple[str, str]]:
    run = _load("openai_overhead.json")
    assert run["key_checks"]["tierroute"], "compare like with like: the router checks keys"
    grpc, endpoint = run["grpc"], run["openai_endpoint"]
    added = endpoint["ttft_p50_ms"] - grpc["ttft_p50_ms"]
    share = endpoint["requests_per_s"] / grpc["requests_per_s"]
    sentence = (
        f"gRPC baseline {grpc['ttft_p50_ms']:.2f} ms TTFT p50, the endpoint "
        f"{endpoint['ttft_p50_ms']:.2f} ms, so the endpoint adds {_signed(added)} TTFT p50 with "
        f"the router's API keys on, and keeps {share:.0%} of the gRPC throughput "
        f"({endpoint['requests_per_s']:.0f} vs {grpc['requests_per_s']:.0f} req/s)"
    )
    figures = [(BENCHMARKS, sentence)]
    if "litellm_proxy" in run:
        assert run["key_checks"]["litellm"], "LiteLLM checks its master key"
        peer = run["litellm_proxy"]["ttft_p50_ms"] - run["backend_direct"]["ttft_p50_ms"]
        figures.append(
            (
                README,
                f"The OpenAI endpoint adds {_signed(added)} TTFT p50 to the router's gRPC API, "
                f"where LiteLLM's proxy adds {_signed(peer)} to its backend",
            )
        )
    return figures


FIGURES = [*_replay_figures(), *_router_figures(), *_model_figures(), *_openai_figures()]


@pytest.mark.parametrize(("document", "figure"), FIGURES, ids=[f[1][:60] for f in FIGURES])
def test_the_document_quotes_the_committed_figure(document: str, figure: str) -> None:
    assert " ".join(figure.split()) in _text(document), f"{document} should say: {figure}"


def test_retired_headline_figures_are_gone() -> None:
    # Figures the results no longer support (a 64-token classifier, a decision "in about a
    # millisecond", the router's TTFT without the classifier quoted as the default's).
    readme = _text(README)
    assert "about a millisecond" not in readme
    assert "~1.5 ms TTFT" not in readme
    evaluation = _text(EVALUATION)
    assert "threshold 0.859 calibrated" not in evaluation
    assert "its threshold 0.859" not in evaluation
    assert not re.search(r"APGR \| 0\.605 \|", evaluation)


def test_every_committed_result_names_its_command_and_date() -> None:
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data.get("runs", [data])
        for run in runs:
            assert run.get("command") and run.get("date"), path.name
