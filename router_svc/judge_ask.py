"""The ``llm`` judge's question, asked of the largest tier through the normal tier client.

One chat message, greedy, one generated token: its text and log-probability are what the judge
reads (:class:`~tierroute.judges.llm.AskResult`); the call is priced at the tier's prices and
counted as the judgment's cost. A tier that cannot answer is a
:class:`~tierroute.judges.JudgeUnavailableError`: the sample is dropped, never guessed.
"""

from __future__ import annotations

import uuid

from router_svc.cascade import TierFailure, TierResult
from router_svc.costs import Prices, token_cost
from router_svc.tiers import TierClient
from tierroute.errors import TierrouteError
from tierroute.judges import JudgeUnavailableError
from tierroute.judges.llm import Ask, AskResult
from tierroute.v1 import common_pb2, model_service_pb2


def judge_request(question: str, request_id: str) -> model_service_pb2.GenerateRequest:
    """The model service request asking ``question`` for one greedy token."""
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)
    return model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(chat=common_pb2.Chat(messages=[message])),
        sampling=common_pb2.SamplingParams(max_tokens=1, temperature=0.0),
        request_id=request_id,
    )


def tier_ask(client: TierClient, prices: Prices) -> Ask:
    """An :data:`~tierroute.judges.llm.Ask` over ``client`` (the largest tier's)."""

    async def ask(question: str) -> AskResult:
        request_id = f"judge-{uuid.uuid4().hex}"
        token = ""
        logprob: float | None = None
        cost = 0.0
        try:
            # No caller deadline: judging runs after the caller left; the tier's timeout bounds it.
            async for item in client.generate(
                judge_request(question, request_id), request_id, None
            ):
                if isinstance(item, TierResult):
                    cost = token_cost(item.prompt_tokens, item.completion_tokens, prices)
                    continue
                token += item.payload.text
                if logprob is None and item.payload.logprobs:
                    logprob = float(item.payload.logprobs[0])
        except (TierFailure, TierrouteError) as exc:
            raise JudgeUnavailableError(f"the largest tier could not judge: {exc}") from exc
        return AskResult(token=token, logprob=logprob, cost_usd=cost)

    return ask
