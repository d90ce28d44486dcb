"""The sandbox never weakens silently: below the minimum isolation it refuses, opt-outs show.

Real runs: as root (this project's machines) the default minimum holds, and isolation is taken
away on purpose (no namespaces, no throw-away uid, only a user namespace) to see the refusal;
as any other user the default run itself is refused. The label logic is also checked alone.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.sandbox_privileges import ROOT
from tierroute.sandbox import (
    CLONE_NEWNS_FLAGS,
    DEFAULT_MINIMUM,
    NO_MINIMUM,
    Limits,
    MinimumIsolation,
    SandboxRefusedError,
    _run,
    require_minimum,
    run_python,
)

QUICK = Limits(timeout_seconds=10.0, cpu_seconds=5)
OPTED_OUT = replace(QUICK, minimum=NO_MINIMUM)
MARKER = "program-ran"
PROGRAM = f"import sys\nsys.stderr.write({MARKER!r})\n"


def test_what_each_isolation_misses() -> None:
    assert DEFAULT_MINIMUM.missing("netns+pidns,throwaway-uid") == ()
    assert DEFAULT_MINIMUM.missing("netns,throwaway-uid") == ("pidns",)
    assert DEFAULT_MINIMUM.missing("audit-hook,own-uid") == ("netns", "pidns", "throwaway-uid")
    assert DEFAULT_MINIMUM.missing("netns+pidns,root") == ("throwaway-uid",)
    assert DEFAULT_MINIMUM.missing("userns+netns+pidns,own-uid") == ("throwaway-uid",)
    # Asking for the network waives the network namespace, not the rest.
    assert DEFAULT_MINIMUM.missing("network-allowed+pidns,throwaway-uid", network=True) == ()
    assert DEFAULT_MINIMUM.missing("network-allowed,root", network=True) == (
        "pidns",
        "throwaway-uid",
    )
    assert NO_MINIMUM.missing("audit-hook,own-uid") == ()
    assert MinimumIsolation(throwaway_uid=False).missing("netns+pidns,root") == ()


def test_the_default_follows_the_privileges() -> None:
    result = run_python(PROGRAM, limits=QUICK)
    if ROOT:
        assert result.passed and MARKER in result.detail
        assert result.isolation == "netns+pidns,throwaway-uid"
        assert not result.refused and result.below_default == ()
        assert require_minimum(QUICK).isolation == "netns+pidns,throwaway-uid"
        return
    # Any other user: refused, with a clear error, and runs only under the explicit opt-out.
    assert result.status == "error" and result.refused and not result.passed
    assert MARKER not in result.detail and "throwaway-uid" in result.detail
    with pytest.raises(SandboxRefusedError, match="below the configured minimum"):
        require_minimum(QUICK)
    opted_out = run_python(PROGRAM, limits=OPTED_OUT)
    assert opted_out.passed and MARKER in opted_out.detail
    assert "throwaway-uid" in opted_out.below_default


@pytest.mark.parametrize(
    ("taken_away", "kwargs", "missing"),
    [
        ("every namespace", {"namespaces": False}, "netns, pidns"),
        ("the throw-away uid", {"throwaway_uid": False}, "throwaway-uid"),
        ("the PID namespace", {"plans": (("netns", CLONE_NEWNS_FLAGS["net"]),)}, "pidns"),
    ],
)
def test_below_the_minimum_the_program_does_not_run(
    taken_away: str, kwargs: dict[str, object], missing: str
) -> None:
    refused = _run(PROGRAM, QUICK, **{"namespaces": True, **kwargs})  # type: ignore[arg-type]
    assert refused.refused and refused.status == "error", taken_away
    assert MARKER not in refused.detail
    # (Exactly what was taken away as root; a non-root caller misses more.)
    named = refused.detail.partition("missing: ")[2].partition(")")[0].split(", ")
    assert set(missing.split(", ")) <= set(named) and "NO_MINIMUM" in refused.detail
    if ROOT:
        assert named == missing.split(", ")
    # The explicit opt-out runs it and every result says what it lacked.
    ran = _run(PROGRAM, OPTED_OUT, **{"namespaces": True, **kwargs})  # type: ignore[arg-type]
    assert ran.passed and MARKER in ran.detail, ran.detail
    assert set(missing.split(", ")) <= set(ran.below_default)


def test_the_user_label_is_taken_before_the_user_namespace() -> None:
    # Inside a new user namespace every uid reads as the overflow uid: the label must say who
    # the program really runs as outside it.
    # (No throw-away uid: the launcher does not switch uids inside a user namespace, so its
    # files must stay the caller's.)
    plans = (("userns+netns+pidns", sum(CLONE_NEWNS_FLAGS.values())),)
    result = _run(PROGRAM, OPTED_OUT, namespaces=True, plans=plans, throwaway_uid=False)
    user = result.isolation.partition(",")[2]
    assert user == ("root" if ROOT else "own-uid"), result.isolation
    if result.isolation.startswith("userns"):
        assert result.passed, result.detail
        assert "throwaway-uid" in result.below_default
