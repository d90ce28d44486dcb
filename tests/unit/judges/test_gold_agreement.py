"""Each judge's agreement with gold on the project's task sets (figures printed; run with -s).

- ``code``: HumanEval tasks whose prompt has ``>>>`` examples, sent in chat form; for each,
  the reference solution and a broken variant of it (the same computation, a wrong value
  returned) are judged from the prompt's examples only, and compared with the verdict of the
  task's hidden tests.
- ``agreement``: the arithmetic number tasks, with the reference written out with its working
  and candidates right or wrong in the forms answers take (bare, with working, marked,
  emphasised); gold is the offline evaluation's exact-number scoring against the task's answer.
  References are right here, so this measures reading the answers, not the reference's own
  accuracy.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.sandbox_privileges import sandbox_limits
from tierroute.answers import is_correct
from tierroute.judges import AgreementJudge, CodeJudge, JudgeCase
from tierroute.judges.code import prompt_examples
from tierroute.sandbox import Limits
from tierroute.sandbox_proof import run_checked
from tierroute_tools.evaluation.code_tasks import CodeTask, build_prompt, checks, load_tasks
from tierroute_tools.evaluation.tasks import arithmetic_items

MIN_AGREEMENT = 0.9
LIMITS = sandbox_limits(Limits(timeout_seconds=10.0))

# The reference solution's value, made wrong on the way out (a "wrong return").
BROKEN = """

_tierroute_original = {entry}


def _tierroute_wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return value + [None]
    if isinstance(value, tuple):
        return value + (None,)
    return 0 if value is None else None


def {entry}(*args, **kwargs):
    return _tierroute_wrong(_tierroute_original(*args, **kwargs))
"""


def _has_examples(task: CodeTask) -> bool:
    return any(example.want for example in prompt_examples(task.prompt))


async def _judged_and_gold(judge: CodeJudge, task: CodeTask, code: str) -> tuple[bool, bool, bool]:
    answer = f"Here is the function:\n\n```python\n{code}\n```\n"
    verdict = await judge.judge(JudgeCase(build_prompt(task, "chat"), answer))
    gold = await asyncio.to_thread(run_checked, code, checks(task), limits=LIMITS)
    return verdict.decided, verdict.acceptable, gold.passed


@pytest.mark.slow  # about 140 sandbox runs: 10-30 s on two cores
async def test_code_judge_agrees_with_hidden_tests() -> None:
    tasks = load_tasks("humaneval")
    with_examples = [task for task in tasks if _has_examples(task)]
    sample = with_examples[::2]
    judge = CodeJudge(LIMITS, concurrency=2)
    runs = []
    for task in sample:
        right = task.prompt + task.canonical
        wrong = right + BROKEN.format(entry=task.entry_point)
        runs += [_judged_and_gold(judge, task, right), _judged_and_gold(judge, task, wrong)]
    results = await asyncio.gather(*runs)
    decided = [(acceptable, gold) for was_decided, acceptable, gold in results if was_decided]
    agreement = sum(acceptable == gold for acceptable, gold in decided) / len(decided)
    gold_split = sum(gold for _, _, gold in results)
    print(
        f"\ncode judge vs hidden tests: agreement {agreement:.3f} on {len(decided)} answers "
        f"({len(sample)} tasks x right/broken; {gold_split} pass the hidden tests); "
        f"{len(with_examples)}/{len(tasks)} HumanEval prompts have >>> examples"
    )
    assert len(decided) >= 0.9 * len(results)
    assert 0.4 <= gold_split / len(results) <= 0.6  # both classes present, near half each
    assert agreement >= MIN_AGREEMENT


RIGHT_FORMS = (
    "{r}",
    "{a} {op} {b} = {r}",
    "{a} {op} {b} = {r}, so the answer is {r}.",
    "The answer is **{r}**.",
    "Let me work it out: {a} {op} {b} gives {r}.\n\nAnswer: {r}",
    "Sure! {a} {op} {b} equals {r}.",
    "{r}.0",
)
WRONG_FORMS = (
    "{w}",
    "{a} {op} {b} = {w}",
    "I think it's {w}, since {a} {op} {b} = {w}.",
    "The answer is {w}.",
    "I cannot compute that.",
    "{a} {op} {b} is a bit tricky. Answer: {w}",
)
REFERENCE_FORMS = (
    "{a} {op} {b} = {r}, so the answer is {r}.",
    "To compute {a} {op} {b}: {a} {op} {b} = {r}.\n\n#### {r}",
    "{a} {op} {b} = {r}",
)


async def test_agreement_judge_agrees_with_gold_on_number_tasks() -> None:
    judge = AgreementJudge()
    items = arithmetic_items(150, seed=7)
    agree = total = 0
    for index, item in enumerate(items):
        a, op, b = item.prompt.rsplit("Q: ", 1)[1].split("\n")[0].split()
        r = item.answer
        w = str(int(r) + (1 if index % 2 else -1))
        reference = REFERENCE_FORMS[index % len(REFERENCE_FORMS)].format(a=a, op=op, b=b, r=r)
        candidates = [f.format(a=a, op=op, b=b, r=r) for f in RIGHT_FORMS]
        candidates += [f.format(a=a, op=op, b=b, w=w) for f in WRONG_FORMS]
        for candidate in candidates:
            verdict = await judge.judge(JudgeCase(item.prompt, candidate, reference))
            gold = is_correct(candidate, item.answer, "number")
            total += 1
            agree += verdict.decided and verdict.acceptable == gold
    agreement = agree / total
    print(f"\nagreement judge vs gold on number tasks: {agreement:.3f} on {total} answers")
    assert agreement >= MIN_AGREEMENT
