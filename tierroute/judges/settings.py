"""Which judge applies where: the ``judges`` settings section.

Selection for a request, first match wins: the judge named for its route (the routing reason,
e.g. a rule's name, or a route string the caller chose), else the one named for its tenant,
else ``default``. A route names a kind of task, and the judge fits the task, so a route's
choice beats a tenant's; a tenant's entry is that tenant's default for routes not named.
When the selected judge is undecided, ``fallbacks`` names the next one to ask, and so on
(``agreement`` → ``llm``: prose has no canonical result to compare, a model can still read it).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from tierroute.config import Section
from tierroute.judges.llm import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_NO_REFERENCE,
    TEMPLATE_FIELDS,
    TEMPLATE_FIELDS_NO_REFERENCE,
    template_fields,
)

JudgeName = Literal["agreement", "llm", "code", "json_schema"]
"""The judges a setting may name (caller feedback is not selected: the caller sends it)."""

JUDGE_NAMES: tuple[JudgeName, ...] = ("agreement", "llm", "code", "json_schema")


def _default_fallbacks() -> dict[JudgeName, JudgeName]:
    return {"agreement": "llm", "code": "llm", "json_schema": "llm"}


class JudgeSettings(Section):
    """Which judge decides whether a cheaper tier's answer was acceptable, and how."""

    default: JudgeName = "agreement"
    """The judge for requests whose route and tenant name none."""
    routes: dict[str, JudgeName] = Field(default_factory=dict)
    """Judge per route (the routing reason or a caller-chosen route string)."""
    tenants: dict[str, JudgeName] = Field(default_factory=dict)
    """Judge per tenant, for routes that ``routes`` does not name."""
    fallbacks: dict[JudgeName, JudgeName] = Field(default_factory=_default_fallbacks)
    """The judge to ask when the key judge is undecided; chains must not loop."""
    llm_template: str = DEFAULT_TEMPLATE
    """The ``llm`` judge's question, with ``{question}``, ``{reference}``, ``{candidate}``."""
    llm_template_no_reference: str = DEFAULT_TEMPLATE_NO_REFERENCE
    """The ``llm`` judge's question when no reference answer exists (``{question}``,
    ``{candidate}``)."""
    llm_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """P(yes) at or above which the ``llm`` judge finds an answer acceptable."""
    code_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    """Wall-clock limit of one ``code`` judge run, seconds (the CPU limit follows it)."""
    code_concurrency: int = Field(default=2, ge=1, le=64)
    """``code`` judge sandboxes run at once (each holds a thread and a process)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            fields = template_fields(self.llm_template)
            fields_no_reference = template_fields(self.llm_template_no_reference)
        except ValueError as exc:
            raise ValueError(f"judges: an llm template is not a format string: {exc}") from exc
        if fields != TEMPLATE_FIELDS:
            raise ValueError(f"judges.llm_template needs exactly {sorted(TEMPLATE_FIELDS)}")
        if fields_no_reference != TEMPLATE_FIELDS_NO_REFERENCE:
            raise ValueError(
                "judges.llm_template_no_reference needs exactly "
                f"{sorted(TEMPLATE_FIELDS_NO_REFERENCE)}"
            )
        for start in JUDGE_NAMES:
            self.chain(start)  # raises on a loop
        return self

    def chain(self, first: JudgeName) -> tuple[JudgeName, ...]:
        """``first`` and the judges its fallbacks lead to, in order."""
        chain = [first]
        while chain[-1] in self.fallbacks:
            following = self.fallbacks[chain[-1]]
            if following in chain:
                raise ValueError(f"judges.fallbacks loop: {' -> '.join([*chain, following])}")
            chain.append(following)
        return tuple(chain)

    def selected(self, route: str | None, tenant: str | None) -> JudgeName:
        """The first judge for a request of ``route`` and ``tenant`` (before any fallback)."""
        if route is not None and route in self.routes:
            return self.routes[route]
        if tenant is not None and tenant in self.tenants:
            return self.tenants[tenant]
        return self.default

    def referenced(self) -> frozenset[JudgeName]:
        """Every judge some request could reach (selected or as a fallback)."""
        firsts = {self.default, *self.routes.values(), *self.tenants.values()}
        return frozenset(name for first in firsts for name in self.chain(first))
