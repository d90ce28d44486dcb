"""Judges: was a cheaper tier's answer acceptable, given the largest tier's answer if any?

Shared by the router (judged shadow samples) and the offline evaluation. What belongs here:
the judging logic and its configuration, as plain async code over plain values. What does not:
transport (the ``llm`` judge asks through an injected callable; the router wires it to the
ModelService path), storage of verdicts, and anything heavier than the standard library,
pydantic and ``jsonschema`` (no gRPC, no torch or sklearn).

Judges: ``agreement`` (final results match), ``llm`` (the largest tier's yes/no),
``code`` (the prompt's examples or the caller's tests, in the sandbox), ``json_schema`` (the
caller's schema); caller feedback becomes a verdict through :func:`verdict_from_feedback`.
"""

from tierroute.judges.agreement import AgreementJudge
from tierroute.judges.base import (
    ANSWER_FORMATS,
    AnswerFormat,
    Judge,
    JudgeCase,
    JudgeError,
    JudgeInputError,
    JudgeUnavailableError,
    Verdict,
)
from tierroute.judges.code import CodeJudge
from tierroute.judges.feedback import verdict_from_feedback
from tierroute.judges.json_schema import JsonSchemaJudge, check_schema
from tierroute.judges.llm import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_NO_REFERENCE,
    Ask,
    AskResult,
    LlmJudge,
    p_yes,
)
from tierroute.judges.registry import ChainJudge, JudgeRegistry, build_judges
from tierroute.judges.settings import JUDGE_NAMES, JudgeName, JudgeSettings

__all__ = [
    "ANSWER_FORMATS",
    "DEFAULT_TEMPLATE",
    "DEFAULT_TEMPLATE_NO_REFERENCE",
    "JUDGE_NAMES",
    "AgreementJudge",
    "AnswerFormat",
    "Ask",
    "AskResult",
    "ChainJudge",
    "CodeJudge",
    "JsonSchemaJudge",
    "Judge",
    "JudgeCase",
    "JudgeError",
    "JudgeInputError",
    "JudgeName",
    "JudgeRegistry",
    "JudgeSettings",
    "JudgeUnavailableError",
    "LlmJudge",
    "Verdict",
    "build_judges",
    "check_schema",
    "p_yes",
    "verdict_from_feedback",
]
