"""The ``json_schema`` judge: the answer parses as JSON and validates against the caller's schema.

The JSON is the whole answer when it parses, else the last fenced block marked ``json`` (or
unmarked). The schema's own ``$schema`` picks the draft (the latest one when absent); formats
are not asserted (``"format"`` is an annotation unless the caller's draft says otherwise).
Undecided without a schema; a malformed schema is the caller's error
(:func:`check_schema`, which the router calls where the request enters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; the two calls below are checked
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from tierroute.judges.base import JudgeCase, JudgeInputError, Verdict, ruled, undecided
from tierroute.judges.normalise import fenced_blocks

NAME = "json_schema"

_JSON_FENCES = frozenset({"json", "", "jsonc", "json5"})


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise :class:`JudgeInputError` when ``schema`` is not a valid JSON schema."""
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        raise JudgeInputError("json_schema", f"not a valid JSON schema: {exc.message}") from exc


def answer_json(answer: str) -> tuple[bool, Any]:
    """``(True, value)`` for the JSON the answer holds, ``(False, None)`` when it holds none."""
    texts = [answer]
    texts += [body for info, body in reversed(fenced_blocks(answer)) if info in _JSON_FENCES]
    for text in texts:
        try:
            return True, json.loads(text)
        except ValueError:
            continue
    return False, None


class JsonSchemaJudge:
    """Validates the answer's JSON against the schema the caller gave."""

    name = NAME

    async def judge(self, case: JudgeCase) -> Verdict:
        """Acceptable when the answer's JSON validates; undecided without a schema."""
        if case.json_schema is None:
            return undecided(NAME, "no JSON schema to validate against")
        try:
            check_schema(case.json_schema)
        except JudgeInputError:
            return undecided(NAME, "the JSON schema is not valid")
        found, value = answer_json(case.candidate)
        if not found:
            return ruled(NAME, False, "the answer holds no parseable JSON")
        validator_class = jsonschema.validators.validator_for(case.json_schema)
        error = jsonschema.exceptions.best_match(
            validator_class(case.json_schema).iter_errors(value)
        )
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            return ruled(NAME, False, f"the JSON does not match the schema at {where}")
        return ruled(NAME, True, "the JSON matches the schema")
