"""The minimum isolation below which the sandbox refuses to run untrusted code.

Kept apart from :mod:`tierroute.sandbox` (which re-exports it) so the policy reads in one place:
what the default asks (network and PID namespaces and a throw-away uid), the explicit opt-out
(``NO_MINIMUM``) and the error a caller that must not score raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierroute.errors import FailedPreconditionError


@dataclass(frozen=True)
class MinimumIsolation:
    """The weakest isolation a sandboxed program may start under; below it, it does not run."""

    network_namespace: bool = True
    """A network namespace of its own (waived by ``Limits(network=True)``, which asks for the
    network)."""
    pid_namespace: bool = True
    """A PID namespace of its own (nothing the program starts outlives the run)."""
    throwaway_uid: bool = True
    """A uid of its own (cannot touch the caller's files or processes; ``RLIMIT_NPROC`` holds)."""

    def missing(self, isolation: str, *, network: bool = False) -> tuple[str, ...]:
        """What of this minimum ``isolation`` (``"<network>,<user>"``) lacks."""
        net, _, user = isolation.partition(",")
        parts = net.split("+")
        return tuple(
            name
            for name, wanted, present in (
                ("netns", self.network_namespace and not network, "netns" in parts),
                ("pidns", self.pid_namespace, "pidns" in parts),
                ("throwaway-uid", self.throwaway_uid, user == "throwaway-uid"),
            )
            if wanted and not present
        )

    def describe(self) -> str:
        """The minimum in words, for error messages."""
        parts = [
            name
            for name, wanted in (
                ("a network namespace", self.network_namespace),
                ("a PID namespace", self.pid_namespace),
                ("a throw-away uid", self.throwaway_uid),
            )
            if wanted
        ]
        return ", ".join(parts) or "nothing"


DEFAULT_MINIMUM = MinimumIsolation()
"""Network and PID namespaces and a throw-away uid: what root on Linux gives."""

NO_MINIMUM = MinimumIsolation(network_namespace=False, pid_namespace=False, throwaway_uid=False)
"""The explicit opt-out, for machines that cannot isolate (results list what they lacked)."""


class SandboxRefusedError(FailedPreconditionError):
    """The sandbox here is weaker than the configured minimum, so untrusted code must not run."""


def required_net(minimum: MinimumIsolation, *, network: bool) -> list[str]:
    """The parts of the launcher's network label the minimum needs (``netns``, ``pidns``)."""
    needed = []
    if minimum.network_namespace and not network:
        needed.append("netns")
    if minimum.pid_namespace:
        needed.append("pidns")
    return needed


def refusal(isolation: str, minimum: MinimumIsolation, network: bool) -> str:
    """The error message of a refused run: what the machine gives, what is missing, what to do."""
    missing = ", ".join(minimum.missing(isolation, network=network))
    return (
        f"sandbox refused to run untrusted code: this machine gives {isolation} (missing: "
        f"{missing}), below the configured minimum ({minimum.describe()}). Run as root on "
        "Linux (namespaces need CAP_SYS_ADMIN, the throw-away uid CAP_SETUID), or opt out "
        "explicitly (Limits(minimum=NO_MINIMUM)); an opt-out is recorded in every result."
    )
