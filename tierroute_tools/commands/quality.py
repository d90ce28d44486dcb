"""``tierroute quality`` and ``tierroute feedback``: the quality loop of a running router.

``tierroute quality --router ADDR`` prints the quality the router has served relative to
all-largest, with its confidence interval and evidence: overall, per tier and per route, the
escalation threshold in force per cheaper tier, the savings net of shadow and judge costs, and
the judged samples by judge (``--json``: the ``GetQuality`` response as JSON).

``tierroute feedback --router ADDR REQUEST_ID SCORE`` records the caller's own verdict (0..1)
on an answer the router served, as a judged sample of that request; send it with the API key
that made the request.

Exit codes: 0 done, 1 the router refused the call (its status is printed), 2 the router cannot
be reached (or the TLS files are unusable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from tierroute_tools.commands.ask import API_KEY_ENV, add_router_arguments, client_tls

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

    from tierroute.v1 import router_service_pb2

# Statuses that mean "no answer from a router at this address" rather than a refusal.
_UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value:g}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``quality`` and ``feedback`` commands."""
    quality = subparsers.add_parser(
        "quality",
        help="print the quality a running router serves, with its evidence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_router_arguments(quality, timeout=10.0)
    quality.add_argument("--json", action="store_true", help="print the response as JSON")
    quality.set_defaults(func=run_quality)
    feedback = subparsers.add_parser(
        "feedback",
        help="record your verdict on an answer the router served",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_router_arguments(feedback, timeout=10.0)
    feedback.add_argument("request_id", help="id of the request (Routed.request_id, x-request-id)")
    feedback.add_argument("score", type=_score, help="how acceptable the answer was, 0 .. 1")
    feedback.add_argument("--comment", default="", help="a remark stored with the judgment")
    feedback.set_defaults(func=run_feedback)


def _call(args: argparse.Namespace, work: Any) -> int:
    """Run ``work(router)`` against ``--router``; the exit code of the module docstring."""
    from tierroute.client import Router, RouterError

    async def go() -> None:
        api_key = args.api_key or os.environ.get(API_KEY_ENV)
        tls = client_tls(args)
        async with Router(args.router, api_key=api_key, timeout=args.timeout, tls=tls) as router:
            await work(router)

    try:
        asyncio.run(go())
    except ValueError as exc:  # unreadable or mismatched TLS files, bad arguments
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RouterError as exc:
        if exc.code.name in _UNREACHABLE:
            print(
                f"error: cannot reach the router at {args.router} ({exc.code.name}: "
                f"{exc.message}); check --router and the TLS options",
                file=sys.stderr,
            )
            return 2
        print(f"error: the router refused: {exc}", file=sys.stderr)
        return 1
    return 0


def run_quality(args: argparse.Namespace) -> int:
    """Fetch ``GetQuality`` and print it as a table (or JSON)."""

    async def work(router: Any) -> None:
        reply = await router.get_quality()
        if args.json:
            print(as_json(reply))
        else:
            print_quality(reply, sys.stdout, datetime.now(UTC))

    return _call(args, work)


def run_feedback(args: argparse.Namespace) -> int:
    """Send ``SubmitFeedback`` and print the stored judgment."""

    async def work(router: Any) -> None:
        reply = await router.submit_feedback(args.request_id, args.score, args.comment)
        verdict = "acceptable" if reply.acceptable else "not acceptable"
        replaced = " (replaced earlier feedback)" if reply.replaced else ""
        print(
            f"recorded: request {reply.request_id} served by {reply.served_tier or '?'}: "
            f"judge={reply.judge} score={reply.score:g} {verdict} "
            f"(cut-off {reply.acceptance_threshold:g}){replaced}"
        )

    return _call(args, work)


def as_json(reply: router_service_pb2.GetQualityResponse) -> str:
    """The response as JSON, field names as in the proto, zero values included."""
    from google.protobuf import json_format

    document = json_format.MessageToDict(
        reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(document, indent=2, sort_keys=True)


def _when(stamp: Timestamp, now: datetime) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "never"
    at = stamp.ToDatetime(tzinfo=UTC)
    minutes = max(0, round((now - at).total_seconds() / 60))
    ago = f"{minutes} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago"
    return f"{at:%Y-%m-%d %H:%M:%S}Z ({ago})"


def verdict(reply: router_service_pb2.GetQualityResponse) -> str:
    """One line: does the evidence show the promise held, missed, or neither yet."""
    overall = reply.overall
    if overall.samples == 0:
        return "no judged samples yet: nothing is known about the quality served"
    if overall.lower_bound >= reply.target:
        return "HOLDS: the lower bound is at or above the target"
    if overall.upper_bound < reply.target:
        return "MISSED: even the upper bound is below the target"
    return "NOT SHOWN: the interval still spans the target (more samples needed)"


def _estimates(
    rows: list[tuple[str, router_service_pb2.QualityEstimate]], out: TextIO, target: float
) -> None:
    width = max(len(name) for name, _ in rows)
    out.write(f"  {'slice':<{width}}  estimate  interval            samples  effective\n")
    for name, e in rows:
        if e.samples == 0:
            out.write(f"  {name:<{width}}  {'-':>8}  {'-':<18}  {0:>7}  {0:>9}\n")
            continue
        interval = f"[{e.lower_bound:.1%}, {e.upper_bound:.1%}]"
        flag = "  < target" if e.lower_bound < target else ""
        out.write(
            f"  {name:<{width}}  {e.estimate:>8.1%}  {interval:<18}  {e.samples:>7}"
            f"  {e.effective_samples:>9.1f}{flag}\n"
        )


def print_quality(reply: router_service_pb2.GetQualityResponse, out: TextIO, now: datetime) -> None:
    """The readable report of ``tierroute quality``."""
    if not reply.enabled:
        out.write("the quality loop is off on this router (no shadow sampling, no judges)\n")
        return
    out.write(
        f"quality served relative to all-largest, computed {_when(reply.computed_time, now)}\n"
        f"target {reply.target:.1%}, intervals at {reply.confidence_level:.0%} confidence\n"
        f"{verdict(reply)}\n\n"
    )
    rows = [("all", reply.overall)]
    rows += [(f"tier {e.name}", e) for e in reply.tiers]
    rows += [(f"route {e.name}", e) for e in reply.routes]
    _estimates(rows, out, reply.target)
    if reply.thresholds:
        out.write("\nescalation thresholds in force\n")
        width = max(4, *(len(t.tier) for t in reply.thresholds))
        out.write(f"  {'tier':<{width}}  value  samples  pinned  last change\n")
        for t in reply.thresholds:
            pinned = "yes" if t.pinned else "no"
            out.write(
                f"  {t.tier:<{width}}  {t.value:.3f}  {t.samples:>7}  {pinned:<6}  "
                f"{_when(t.last_change_time, now)}\n"
            )
    out.write(
        "\ncost (USD)\n"
        f"  served {reply.cost_usd:.6f}  all-largest {reply.baseline_cost_usd:.6f}  "
        f"shadow {reply.shadow_cost_usd:.6f}  judges {reply.judge_cost_usd:.6f}\n"
        f"  savings net of shadow and judge costs: {reply.savings_ratio:.1%}\n"
    )
    if reply.judges:
        out.write("\njudged samples by judge\n")
        width = max(5, *(len(j.judge) for j in reply.judges))
        out.write(f"  {'judge':<{width}}  samples  acceptable  cost (USD)\n")
        for j in reply.judges:
            out.write(
                f"  {j.judge:<{width}}  {j.samples:>7}  {j.acceptable:>10}  {j.cost_usd:.6f}\n"
            )
