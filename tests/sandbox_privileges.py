"""What the sandbox tests may expect from the privileges they run with.

Root on Linux gets the default minimum isolation (network and PID namespaces, a throw-away uid);
any other user is refused by default. Tests that exercise something other than isolation (limits,
scoring, judging) run under the explicit opt-out there, and ``test_sandbox_minimum`` asserts
the refusal itself, so no test is skipped for want of root.
"""

from __future__ import annotations

import os
from dataclasses import replace

from tierroute.sandbox import NO_MINIMUM, Limits

ROOT = os.geteuid() == 0
"""True when the tests run as root (the sandbox can then give its default minimum)."""


def sandbox_limits(limits: Limits) -> Limits:
    """``limits`` as is under root, else with the explicit opt-out of the minimum isolation."""
    return limits if ROOT else replace(limits, minimum=NO_MINIMUM)
