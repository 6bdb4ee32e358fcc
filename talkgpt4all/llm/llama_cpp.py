"""A GGUF model run in process by llama-cpp-python, with the chat template from the model's metadata."""

from __future__ import annotations

import contextlib
import logging
import os
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
        log.info("language model: %s (context %d tokens)", path.name, self.context_size)

    def _prompt(self, messages: list[Message]) -> tuple[list[int], Any]:
        result = self.formatter(messages=messages)  # type: ignore[arg-type]
        tokens = self.llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens, result

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._prompt(messages)[0])

    def stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        tokens, result = self._prompt(messages)
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
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
