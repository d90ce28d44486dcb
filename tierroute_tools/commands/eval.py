"""``tierroute eval``: prove the savings — offline replay, live runs, fitting the fallback.

Sub-commands:

- ``convert``: RouteLLM's routing data → the generic outcome JSONL (optionally one split).
- ``replay DATA --strong M --weak M``: every routing policy on recorded outcomes; JSON,
  Markdown and PNGs.
- ``cross-benchmark``: the classifier head trained without a benchmark, replayed on it.
- ``make-task``: a live task file (few-shot arithmetic with gold answers).
- ``live DATA`` or ``live --task humaneval``: prompts through the real tiers, scored (exact match,
  or by running the task's tests in a sandbox); against ``--router ADDR`` or a platform it
  starts itself (``--tiers pair|code3``).
- ``live DATA --policy static|fitted|controller ...``: the stream evaluation: the items in order
  through one fresh router per policy, per window and overall, against the pinned tiers
  (:mod:`tierroute_tools.evaluation.stream_run`).
- ``fit-confidence RECORDS``: the confidence calibration and the fallback threshold, fitted on
  one half of live results and reported on the other; writes configuration for the services.

Results go to ``$TIERROUTE_CACHE_DIR/eval/`` unless ``--out-dir`` says otherwise; progress to
stderr, a summary to stdout. Heavy imports happen inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

POLICY_CHOICES = (
    "classifier",
    "rules+classifier",
    "random",
    "always-weak",
    "always-strong",
    "oracle",
)
PRESET_CHOICES = ("pair", "code3")


def register(subparsers: Any) -> None:
    """Add the ``eval`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate routing: offline replay, live runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="eval_command", required=True)
    _register_convert(commands)
    _register_replay(commands)
    _register_cross(commands)
    _register_make_task(commands)
    _register_live(commands)
    _register_fit(commands)


def _out_dir(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"output directory (default: $TIERROUTE_CACHE_DIR/eval/{default})",
    )


def _resolve_out(args: argparse.Namespace, default: str) -> Path:
    from tierroute_tools.evaluation.scoring import eval_dir

    return Path(args.out_dir) if args.out_dir is not None else eval_dir() / default


def _prices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices",
        nargs="*",
        default=[],
        metavar="MODEL=IN,OUT",
        help="dollars per 1M input,output tokens (default for the RouteLLM models: "
        "RouteLLM's assumed $24.7 and $0.24 per 1M tokens)",
    )
    parser.add_argument(
        "--output-tokens",
        type=int,
        default=256,
        help="answer tokens assumed when a row has no token counts",
    )
    parser.add_argument(
        "--chars-per-token",
        type=float,
        default=4.0,
        help="prompt characters per token assumed when a row has no token counts",
    )


def _register_convert(commands: Any) -> None:
    convert = commands.add_parser("convert", help="RouteLLM data -> outcome JSONL")
    convert.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    convert.add_argument(
        "--benchmark",
        action="append",
        choices=("mmlu", "gsm8k", "mt_bench"),
        help="benchmark to include (repeatable; default: all)",
    )
    convert.add_argument("--data-dir", type=Path, default=None, help="default: data/routellm")
    convert.add_argument(
        "--split",
        choices=("all", "train", "validation", "test"),
        default="all",
        help="keep one split of the classifier's split by prompt (seed and fractions of "
        "the classifier card when it exists)",
    )
    convert.set_defaults(func=run_convert)


def _register_replay(commands: Any) -> None:
    replay = commands.add_parser("replay", help="replay routing policies on outcomes")
    replay.add_argument("data", type=Path, help="outcome JSONL (.jsonl or .jsonl.gz)")
    replay.add_argument("--strong", required=True, help="strong model name in the scores")
    replay.add_argument("--weak", required=True, help="weak model name in the scores")
    replay.add_argument(
        "--policy",
        action="append",
        choices=POLICY_CHOICES,
        help="policy to replay (repeatable; default: all)",
    )
    replay.add_argument("--classifier-model", type=Path, default=None, help="ONNX file")
    replay.add_argument(
        "--threshold", type=float, default=None, help="classifier threshold (default: the card's)"
    )
    replay.add_argument("--json", type=Path, default=None, help="per-policy metrics JSON file")
    replay.add_argument("--title", default="Replay", help="title of tables and plots")
    replay.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    _prices(replay)
    _out_dir(replay, "replay")
    replay.set_defaults(func=run_replay)


def _register_cross(commands: Any) -> None:
    cross = commands.add_parser(
        "cross-benchmark", help="train the head without a benchmark, replay on it"
    )
    cross.add_argument(
        "--held-out",
        action="append",
        choices=("mmlu", "gsm8k", "mt_bench"),
        help="benchmark to hold out (repeatable; default: mt_bench and gsm8k)",
    )
    cross.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    _prices(cross)
    _out_dir(cross, "cross")
    cross.set_defaults(func=run_cross)


def _register_make_task(commands: Any) -> None:
    task = commands.add_parser("make-task", help="write a live task file (few-shot arithmetic)")
    task.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    task.add_argument("--count", type=int, default=150, help="items")
    task.add_argument("--seed", type=int, default=0, help="seed of the operands")
    task.set_defaults(func=run_make_task)


def _register_live(commands: Any) -> None:
    live = commands.add_parser("live", help="send prompts through the router and score them")
    live.add_argument(
        "data", type=Path, nargs="?", help="task JSONL: id, prompt, answer, kind, source"
    )
    live.add_argument(
        "--task",
        default=None,
        help="a code task set instead of DATA (humaneval, ...): scored by running its tests",
    )
    target = live.add_mutually_exclusive_group()
    target.add_argument("--router", help="address of a running router (host:port)")
    target.add_argument(
        "--start-platform",
        action="store_true",
        help="start the embedded tiers and router for this run, stop them after (the default "
        "without --router)",
    )
    live.add_argument(
        "--tiers",
        choices=PRESET_CHOICES,
        default="pair",
        help="tier preset of the platform this command starts (pair: SmolLM2 > Qwen-0.5B; "
        "code3: SmolLM2 > Qwen-Coder-0.5B > -1.5B)",
    )
    live.add_argument(
        "--chain",
        default=None,
        help="comma-separated tiers to evaluate, the last ones of the router's chain "
        "(default: all its tiers)",
    )
    live.add_argument(
        "--arm",
        action="append",
        help="arm to run: a tier name (pinned), tierroute or cascade (repeatable; default: all)",
    )
    live.add_argument("--limit", type=int, default=None, help="only the first N items")
    live.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per answer at most (default: 16; 384 for code tasks)",
    )
    live.add_argument(
        "--stop",
        action="append",
        default=None,
        help="stop string (default: newline; the task's stop sequences for code tasks)",
    )
    live.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    live.add_argument("--sandboxes", type=int, default=2, help="code sandboxes run at once")
    live.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="score code even below the sandbox's minimum isolation (network and PID "
        "namespaces, a throw-away uid); every record then says what was missing",
    )
    live.add_argument("--timeout", type=float, default=300.0, help="deadline per request (s)")
    live.add_argument(
        "--fallback-threshold",
        type=float,
        default=None,
        help="fallback threshold sent with tierroute/cascade requests (default: the router's)",
    )
    live.add_argument(
        "--router-config",
        type=Path,
        default=None,
        help="without --router: YAML merged into the router's configuration "
        "(e.g. router-policy.yaml from fit-confidence)",
    )
    live.add_argument(
        "--model-config",
        type=Path,
        default=None,
        help="without --router: model-service YAML passed to the tiers as TIERROUTE_* "
        "variables (e.g. model-confidence.yaml from fit-confidence)",
    )
    live.add_argument(
        "--half",
        choices=("fit", "report"),
        default=None,
        help="only the items of this half of fit-confidence's split (by item id)",
    )
    live.add_argument("--split-seed", type=int, default=0, help="seed of that split")
    live.add_argument("--title", default=None, help="title of tables and plots")
    _register_stream(live)
    _out_dir(live, "live")
    live.set_defaults(func=run_live)


def _register_stream(live: Any) -> None:
    stream = live.add_argument_group(
        "stream evaluation (with --policy)",
        "the items flow in order through one fresh router per policy, in chat form; pinned "
        "arms per tier give all-largest quality and cost on the same items",
    )
    stream.add_argument(
        "--policy",
        action="append",
        choices=("static", "fitted", "controller", "learned-start"),
        help="policy to evaluate on the stream (repeatable): static (shipped threshold), "
        "fitted (fit-confidence output), controller (quality loop on), learned-start "
        "(controller plus the learned start tier)",
    )
    stream.add_argument(
        "--json", type=Path, default=None, help="per-policy summary JSON file (with --policy)"
    )
    stream.add_argument("--window", type=int, default=25, help="items per report window")
    stream.add_argument(
        "--fitted",
        type=Path,
        default=None,
        help="fit-confidence output directory for the fitted policy (default: fit on the "
        "pinned arms' fit half of this run)",
    )
    stream.add_argument(
        "--tier-address",
        action="append",
        default=None,
        metavar="NAME=HOST:PORT",
        help="running tiers, cheapest first, instead of starting --tiers (repeatable)",
    )
    stream.add_argument(
        "--tier-price",
        action="append",
        default=[],
        metavar="NAME=IN,OUT",
        help="with --tier-address: a tier's dollars per 1M input,output tokens (default: what "
        "the tier's GetModelInfo says)",
    )
    stream.add_argument(
        "--price-ratio",
        type=float,
        default=7.5,
        help="price sweep: the cheapest tier at 1/RATIO of the largest tier's per-token price",
    )
    stream.add_argument(
        "--quality",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the controller's quality loop (router quality: section), e.g. "
        "initial_rate=0.5 refit_every=10 (repeatable; default: the router's defaults)",
    )
    stream.add_argument(
        "--resume",
        action="store_true",
        help="keep the arms an earlier run over the same items finished (stream.partial.jsonl)",
    )
    stream.add_argument(
        "--settle-seconds",
        type=float,
        default=30.0,
        help="longest wait after the stream for shadow samples in flight to be judged",
    )


def _register_fit(commands: Any) -> None:
    fit = commands.add_parser(
        "fit-confidence", help="fit the confidence calibration and the fallback threshold"
    )
    fit.add_argument("records", type=Path, help="records.jsonl of a live run (pinned arms)")
    fit.add_argument(
        "--chain",
        default=None,
        help="comma-separated tiers, cheapest first (default: the run's, from live.json beside "
        "the records; else small,large)",
    )
    fit.add_argument(
        "--target",
        type=float,
        default=0.95,
        help="cascade accuracy to reach, as a fraction of the large tier's",
    )
    fit.add_argument("--seed", type=int, default=0, help="seed of the fit/report split")
    fit.add_argument(
        "--current-threshold",
        type=float,
        default=0.65,
        help="the router's fallback threshold the records ran with (for the 'before' figures)",
    )
    fit.add_argument(
        "--service-config",
        type=Path,
        default=None,
        help="the small tier's model-service YAML the records ran with (default: defaults)",
    )
    _out_dir(fit, "fit")
    fit.set_defaults(func=run_fit)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _fail(exc: Exception) -> int:
    print(f"tierroute eval: {exc}", file=sys.stderr)
    return 1


def run_convert(args: argparse.Namespace) -> int:
    """Write the RouteLLM outcomes (de-duplicated, optionally one split) as JSONL."""
    from tierroute_tools.evaluation.convert import convert_routellm

    try:
        rows = convert_routellm(args.out, args.data_dir, args.benchmark, args.split)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    print(f"wrote {rows} outcome rows to {args.out}")
    return 0


def _price_table(args: argparse.Namespace, models: list[str]) -> Any:
    from tierroute_tools.evaluation.prices import parse_prices, resolve_prices

    return resolve_prices(models, parse_prices(args.prices))


def _assumption(args: argparse.Namespace) -> Any:
    from tierroute_tools.evaluation.prices import TokenAssumption

    return TokenAssumption(chars_per_token=args.chars_per_token, output_tokens=args.output_tokens)


def run_replay(args: argparse.Namespace) -> int:
    """Replay the policies on an outcome file; write JSON, Markdown and PNGs."""
    from tierroute.outcomes import read_outcomes
    from tierroute_tools.evaluation.replay_run import ReplayOptions, replay_outcomes, write_outputs

    try:
        outcomes = read_outcomes(args.data)
        options = ReplayOptions(
            strong=args.strong,
            weak=args.weak,
            prices=_price_table(args, [args.strong, args.weak]),
            policies=tuple(args.policy or POLICY_CHOICES),
            classifier_model=args.classifier_model,
            threshold=args.threshold,
            assumption=_assumption(args),
            seed=args.seed,
        )
        report = replay_outcomes(outcomes, options, _log)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    out = _resolve_out(args, "replay")
    written = write_outputs(report, out, args.title, args.json)
    print(Path(written["markdown"]).read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def run_cross(args: argparse.Namespace) -> int:
    """Cross-benchmark replays; one output directory per held-out benchmark."""
    from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL
    from tierroute_tools.evaluation.replay_run import cross_benchmark, write_outputs

    out = _resolve_out(args, "cross")
    try:
        reports = cross_benchmark(
            tuple(args.held_out or ("mt_bench", "gsm8k")),
            _price_table(args, [STRONG_MODEL, WEAK_MODEL]),
            out / "features",
            assumption=_assumption(args),
            seed=args.seed,
            log=_log,
        )
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    for held_out, report in reports.items():
        trained = " + ".join(report["classifier"]["trained_on"])
        title = f"{held_out} (head trained on {trained})"
        written = write_outputs(report, out / held_out, title)
        print(Path(written["markdown"]).read_text(encoding="utf-8"))
    print(f"wrote {out}")
    return 0


def run_make_task(args: argparse.Namespace) -> int:
    """Write a few-shot arithmetic task file."""
    from tierroute_tools.evaluation.live import write_items
    from tierroute_tools.evaluation.tasks import arithmetic_items

    try:
        items = arithmetic_items(args.count, args.seed)
    except ValueError as exc:
        return _fail(exc)
    write_items(args.out, items)
    print(f"wrote {len(items)} items to {args.out}")
    return 0


def _live_items(args: argparse.Namespace) -> tuple[list[Any], Any, Any]:
    """Items, their scorer (``None``: exact match) and the default sampling of the task."""
    from tierroute_tools.evaluation.live import Sampling, read_items
    from tierroute_tools.evaluation.live_run import select_half

    if (args.data is None) == (args.task is None):
        raise ValueError("give either a task file (DATA) or --task NAME")
    tasks: dict[str, Any] = {}
    if args.task is not None:
        from tierroute_tools.evaluation.tasks import (
            CODE_MAX_TOKENS,
            code_items,
            code_stop_sequences,
        )

        items, tasks = code_items(args.task)
        default = Sampling(max_tokens=CODE_MAX_TOKENS, stop=code_stop_sequences())
    else:
        items = read_items(args.data)
        default = Sampling()
    if args.half is not None:
        items = select_half(items, args.half, args.split_seed)
    items = items[: args.limit]
    stop = (
        tuple(s.encode().decode("unicode_escape") for s in args.stop)
        if args.stop is not None
        else default.stop
    )
    sampling = Sampling(
        max_tokens=args.max_tokens or default.max_tokens, stop=stop, timeout_seconds=args.timeout
    )
    if not tasks:
        return items, None, sampling
    from tierroute.sandbox import NO_MINIMUM, Limits, require_minimum
    from tierroute_tools.evaluation.tasks import CodeScorer

    limits = Limits(minimum=NO_MINIMUM) if args.allow_weak_sandbox else Limits()
    require_minimum(limits)  # refuse with a clear error before any request is sent
    scorer = CodeScorer({i.id: tasks[i.id] for i in items}, args.sandboxes, limits)
    return items, scorer, sampling


def run_live(args: argparse.Namespace) -> int:
    """Run the arms through the router; write records, the summary and plots."""
    from router_svc.config import PolicySettings
    from tierroute.client import RouterError
    from tierroute.errors import TierrouteError
    from tierroute.launch import LaunchError
    from tierroute_tools.evaluation.live_run import (
        child_environment,
        live_markdown,
        model_service_env,
        read_yaml_mapping,
    )
    from tierroute_tools.evaluation.live_run import run_live as live

    if args.policy:
        return run_stream(args)
    out = _resolve_out(args, "live")
    try:
        if args.router is not None and (args.router_config or args.model_config):
            raise ValueError("--router-config and --model-config need a platform of our own")
        items, scorer, sampling = _live_items(args)
        overrides = read_yaml_mapping(args.router_config)
        # The threshold the cascade runs with: the request's override, else the router's.
        configured = PolicySettings(**overrides.get("policy", {})).fallback_threshold
        threshold = args.fallback_threshold if args.fallback_threshold is not None else configured
        title = args.title or (args.task or "Live")
        with child_environment(model_service_env(read_yaml_mapping(args.model_config))):
            try:
                report = live(
                    items,
                    out,
                    address=args.router,
                    sampling=sampling,
                    concurrency=args.concurrency,
                    preset=args.tiers,
                    chain=args.chain.split(",") if args.chain else None,
                    arm_names=args.arm,
                    scorer=scorer,
                    router_overrides=overrides,
                    fallback_threshold=threshold,
                    title=title,
                    seed=args.split_seed,
                    log=_log,
                )
            finally:
                if scorer is not None:
                    scorer.close()
    except (FileNotFoundError, ValueError, LaunchError, RouterError, TierrouteError) as exc:
        return _fail(exc)
    print(live_markdown(report))
    print(f"wrote {out}")
    return 0


def _tier_addresses(specs: list[str] | None) -> dict[str, str] | None:
    if not specs:
        return None
    addresses = {}
    for spec in specs:
        name, sep, address = spec.partition("=")
        if not sep or not name or not address:
            raise ValueError(f"--tier-address {spec!r}: expected NAME=HOST:PORT")
        addresses[name] = address
    return addresses


def _settings(specs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value read as YAML (numbers, booleans, strings)."""
    import yaml

    settings = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise ValueError(f"{spec!r}: expected KEY=VALUE")
        settings[key] = yaml.safe_load(value)
    return settings


def run_stream(args: argparse.Namespace) -> int:
    """The stream evaluation: pinned arms, then every policy on a fresh router of its own."""
    import json

    from tierroute.client import RouterError
    from tierroute.errors import TierrouteError
    from tierroute.launch import LaunchError
    from tierroute_tools.evaluation.live import Sampling
    from tierroute_tools.evaluation.live_run import read_yaml_mapping
    from tierroute_tools.evaluation.prices import parse_prices
    from tierroute_tools.evaluation.stream import STREAM_MAX_TOKENS, read_stream_items
    from tierroute_tools.evaluation.stream_report import summary_json
    from tierroute_tools.evaluation.stream_run import StreamOptions, run_stream_evaluation
    from tierroute_tools.evaluation.stream_tables import stream_markdown

    out = _resolve_out(args, "stream")
    try:
        if args.router is not None or args.task is not None or args.data is None:
            raise ValueError(
                "--policy needs a task file (DATA) and routers of its own (no --router)"
            )
        if args.model_config is not None:
            raise ValueError("--model-config does not apply to --policy (see --fitted)")
        items = read_stream_items(args.data, args.limit)
        stop = tuple(s.encode().decode("unicode_escape") for s in args.stop or ())
        options = StreamOptions(
            out_dir=out,
            policies=tuple(dict.fromkeys(args.policy)),
            window=args.window,
            sampling=Sampling(
                max_tokens=args.max_tokens or STREAM_MAX_TOKENS,
                stop=stop,
                timeout_seconds=args.timeout,
            ),
            concurrency=args.concurrency,
            preset=args.tiers,
            tier_addresses=_tier_addresses(args.tier_address),
            tier_prices=parse_prices(args.tier_price),
            quality=_settings(args.quality),
            router_overrides=read_yaml_mapping(args.router_config),
            fitted_dir=args.fitted,
            price_ratio=args.price_ratio,
            settle_seconds=args.settle_seconds,
            resume=args.resume,
            sandboxes=args.sandboxes,
            seed=args.split_seed,
            title=args.title or "Stream",
        )
        report = run_stream_evaluation(items, options, _log)
    except (FileNotFoundError, ValueError, LaunchError, RouterError, TierrouteError) as exc:
        return _fail(exc)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary_json(report), indent=2) + "\n", encoding="utf-8")
    print(stream_markdown(report, options.title))
    print(f"wrote {out}")
    return 0


def _fit_chain(args: argparse.Namespace) -> tuple[str, ...]:
    """The tiers of the records: ``--chain``, else the run's ``live.json``, else small,large."""
    import json

    if args.chain:
        return tuple(args.chain.split(","))
    summary = Path(args.records).parent / "live.json"
    if summary.exists():
        tiers = json.loads(summary.read_text(encoding="utf-8")).get("tiers")
        if tiers:
            return tuple(tiers)
    return ("small", "large")


def run_fit(args: argparse.Namespace) -> int:
    """Fit on one half of a live run, report on the other; write both services' YAML."""
    from model_svc.config import ConfidenceSettings
    from tierroute_tools.evaluation.fit_confidence import fit
    from tierroute_tools.evaluation.live import read_records
    from tierroute_tools.evaluation.live_run import read_yaml_mapping

    try:
        section = read_yaml_mapping(args.service_config).get("confidence", {})
        result = fit(
            read_records(args.records),
            tiers=_fit_chain(args),
            base=ConfidenceSettings(**section).params(),
            current_threshold=args.current_threshold,
            target=args.target,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    written = result.write(_resolve_out(args, "fit"))
    print("\n".join(result.summary()))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
