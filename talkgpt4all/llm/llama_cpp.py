"""A GGUF model run in process by llama-cpp-python, with the chat template from the model's metadata."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from talkgpt4all.conversation import Message
from talkgpt4all.errors import ModelError
from talkgpt4all.llm import GenerationOptions, LLMSettings
from talkgpt4all.models import resolve_gguf

log = logging.getLogger("talkgpt4all")

# For the rare GGUF without a template in its metadata: ChatML, which most chat fine-tunes use.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GGUF_MAGIC = b"GGUF"
# The shortest run of cached tokens worth shifting into place (llama-server's --cache-reuse N): long
# enough that a chance match of a few common tokens is not mistaken for a kept turn.
REUSE_MIN_TOKENS = 32


@contextlib.contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """Silence what llama.cpp's C code prints on fd 2 while loading, so errors stay one line."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}: check the file's permissions") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model (corrupt or incomplete download?): download it again, "
            "or pass another --model"
        )


class LlamaCppChatModel:
    def __init__(self, settings: LLMSettings) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = resolve_gguf(settings.model)
        _check_gguf(path)
        debug = log.isEnabledFor(logging.DEBUG)
        try:
            with _quiet_stderr(not debug):
                self.llm = Llama(
                    model_path=str(path),
                    n_ctx=settings.context,
                    n_threads=settings.threads or os.cpu_count(),
                    n_gpu_layers=-1 if settings.gpu else 0,
                    seed=settings.seed if settings.seed >= 0 else 0xFFFFFFFF,
                    verbose=debug,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"cannot load {path} (corrupt, incomplete, or an architecture this llama.cpp does not know): "
                "download it again, or pass another --model"
            ) from exc
        self.path = path
        # llama.cpp may round its context up (to a multiple of 256), but llama-cpp-python's own token
        # buffer keeps the size asked for: the smaller one is the real limit.
        self.context_size = min(settings.context, self.llm.n_ctx())
        metadata: dict[str, str] = self.llm.metadata
        template = metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("%s has no chat template; using ChatML", path.name)
        model: Any = self.llm._model  # the token texts the template needs are only there
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=template or CHATML,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        from llama_cpp import llama_cpp as lib

        self._lib = lib
        memory = getattr(self.llm._ctx, "memory", None)
        self.shifts_context = bool(
            settings.context_shift and memory is not None and lib.llama_memory_can_shift(memory)
        )
        self.last_evaluated: int | None = None
        log.info("language model: %s (context %d tokens)", path.name, self.context_size)

    def _prompt(self, messages: list[Message]) -> tuple[list[int], Any]:
        result = self.formatter(messages=messages)  # type: ignore[arg-type]
        tokens = self.llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens, result

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._prompt(messages)[0])

    def _evaluated_so_far(self) -> int:
        """Prompt tokens llama.cpp has computed in this context, by its own count."""
        return int(self._lib.llama_perf_context(self.llm._ctx.ctx).n_p_eval)

    def _reuse_cache(self, tokens: list[int]) -> None:
        """Shift the cached tokens of the last prompt into place for this one, as llama-server's
        --cache-reuse does, so that only new tokens are computed.

        When the oldest turns are dropped to fit the context, everything after the system prompt
        moves. llama-cpp-python reuses only an unchanged beginning, so every later turn would compute
        the whole history again. Here the dropped turns' tokens are removed from the KV cache and the
        positions of the turns after them shifted down (llama.cpp re-rotates their keys), and the
        token list llama-cpp-python compares against is kept in step with the cache.
        """
        llm = self.llm
        cached: list[int] = llm.input_ids[: llm.n_tokens].tolist()
        head_p = 0  # the prompt's next token to place
        while head_p < min(len(cached), len(tokens)) and cached[head_p] == tokens[head_p]:
            head_p += 1
        head_c, moved = head_p, False  # head_c: the cache's next token to consider
        while head_c < len(cached) and head_p < len(tokens):
            run = 0
            while (
                head_c + run < len(cached)
                and head_p + run < len(tokens)
                and cached[head_c + run] == tokens[head_p + run]
            ):
                run += 1
            if run < REUSE_MIN_TOKENS:
                head_c += 1
                continue
            llm._ctx.kv_cache_seq_rm(0, head_p, head_c)
            llm._ctx.kv_cache_seq_shift(0, head_c, head_c + run, head_p - head_c)
            llm.input_ids[head_p : head_p + run] = cached[head_c : head_c + run]
            head_c, head_p, moved = head_c + run, head_p + run, True
        if moved:
            # generate() now finds these head_p tokens cached, drops what is left after them, and
            # computes only the rest of the prompt.
            llm.n_tokens = head_p

    def prefill(self, messages: list[Message], cancelled: threading.Event) -> int:
        """Compute the prompt for these messages into the cache, without generating; the tokens
        computed. stream() with the same messages then starts sampling at once. Stops between batches
        when cancelled; what was computed stays a valid cache either way."""
        tokens, _ = self._prompt(messages)
        if self.shifts_context:
            self._reuse_cache(tokens)
        llm = self.llm
        cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        if cached == len(tokens) == llm.n_tokens:
            return 0
        # At least the last token is computed again: its logits are where sampling starts.
        start = llm.n_tokens = min(cached, len(tokens) - 1)
        rest = tokens[start:]
        for batch in range(0, len(rest), llm.n_batch):
            if cancelled.is_set():
                break
            llm.eval(rest[batch : batch + llm.n_batch])  # drops the cache past n_tokens first
        # llama.cpp counts the tokens it computed when it next synchronizes: now, so that they count here
        # (and not in the turn that samples after them).
        self._lib.llama_synchronize(self.llm._ctx.ctx)
        return int(llm.n_tokens) - start

    def stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        tokens, result = self._prompt(messages)
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        if self.shifts_context:
            self._reuse_cache(tokens)
        evaluated_before = self._evaluated_so_far()
        self.last_evaluated = None
        chunks = self.llm.create_completion(
            prompt=tokens,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            seed=options.seed if options.seed >= 0 else None,
            stop=stop,
            stopping_criteria=result.stopping_criteria,
            stream=True,
        )
        try:
            for chunk in chunks:
                text = chunk["choices"][0]["text"]  # type: ignore[index]
                if text:
                    yield text
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
            self.last_evaluated = self._evaluated_so_far() - evaluated_before

    def close(self) -> None:
        self.llm.close()
