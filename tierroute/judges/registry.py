"""The judges, built once, and the chain that applies to a request.

:func:`build_judges` makes the judges from the settings and their dependencies (the ``llm``
judge's :data:`~tierroute.judges.llm.Ask`); :meth:`JudgeRegistry.select` gives, for
a route and a tenant, one :class:`ChainJudge` that asks the selected judge and, while the
answer is undecided, its fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tierroute.judges.agreement import AgreementJudge
from tierroute.judges.base import Judge, JudgeCase, JudgeError, Verdict, undecided
from tierroute.judges.code import CodeJudge
from tierroute.judges.json_schema import JsonSchemaJudge
from tierroute.judges.llm import Ask, LlmJudge
from tierroute.judges.settings import JudgeName, JudgeSettings
from tierroute.sandbox import Limits


class ChainJudge:
    """Asks its judges in order until one decides; the verdict counts every judge's cost.

    A judge's error (e.g. the largest tier unreachable) propagates: the caller drops or retries
    the sample rather than record a verdict nobody gave.
    """

    def __init__(self, judges: Sequence[Judge]) -> None:
        if not judges:
            raise ValueError("a judge chain needs at least one judge")
        self._judges = tuple(judges)

    @property
    def name(self) -> str:
        """The judges' names joined by ``>`` (``agreement>llm``)."""
        return ">".join(judge.name for judge in self._judges)

    async def judge(self, case: JudgeCase) -> Verdict:
        """The first decided verdict, its cost the sum of all judges asked."""
        cost = 0.0
        reasons = []
        for judge in self._judges:
            verdict = await judge.judge(case)
            cost += verdict.cost_usd
            if verdict.decided:
                return Verdict(
                    acceptable=verdict.acceptable,
                    score=verdict.score,
                    judge=verdict.judge,
                    reason=verdict.reason,
                    cost_usd=cost,
                )
            reasons.append(f"{verdict.judge}: {verdict.reason}")
        return undecided(self._judges[-1].name, "; ".join(reasons), cost)


class JudgeRegistry:
    """The built judges and the settings that pick among them."""

    def __init__(self, settings: JudgeSettings, judges: Mapping[JudgeName, Judge]) -> None:
        missing = settings.referenced() - set(judges)
        if missing:
            raise JudgeError(f"judges configured but not built: {sorted(missing)}")
        self._settings = settings
        self._judges = dict(judges)

    def judge(self, name: JudgeName) -> Judge:
        """The built judge called ``name`` (``JudgeError`` if it was not built)."""
        try:
            return self._judges[name]
        except KeyError:
            raise JudgeError(f"judge {name!r} is not built") from None

    def chain(self, route: str | None, tenant: str | None) -> tuple[JudgeName, ...]:
        """The judges asked for a request of ``route`` and ``tenant``, in order."""
        return self._settings.chain(self._settings.selected(route, tenant))

    def select(self, route: str | None = None, tenant: str | None = None) -> Judge:
        """The judge (with its fallbacks) for a request of ``route`` and ``tenant``."""
        return ChainJudge([self._judges[name] for name in self.chain(route, tenant)])


def build_judges(settings: JudgeSettings, *, ask: Ask | None = None) -> JudgeRegistry:
    """The judges, built: the local ones always, ``llm`` when ``ask`` is given.

    ``JudgeError`` when the settings can reach ``llm`` (selected or as a fallback) but ``ask``
    is None.
    """
    seconds = settings.code_timeout_seconds
    limits = Limits(timeout_seconds=seconds, cpu_seconds=max(1, int(seconds)))
    built: dict[JudgeName, Judge] = {
        "agreement": AgreementJudge(),
        "code": CodeJudge(limits, concurrency=settings.code_concurrency),
        "json_schema": JsonSchemaJudge(),
    }
    if ask is not None:
        built["llm"] = LlmJudge(
            ask, settings.llm_template, settings.llm_template_no_reference, settings.llm_threshold
        )
    elif "llm" in settings.referenced():
        raise JudgeError("the llm judge is configured but nothing was given to ask with")
    return JudgeRegistry(settings, built)
