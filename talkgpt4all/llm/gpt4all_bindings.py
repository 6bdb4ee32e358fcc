"""--llm gpt4all: a model run by the `gpt4all` package (GPT4All's own llama.cpp build), optional.

Names from the GPT4All catalog (e.g. Meta-Llama-3-8B-Instruct.Q4_0.gguf) are looked up in GPT4All
Desktop's folder and gpt4all's download folder; paths work too. The prompt is built with the model's own
chat template, as for --llm llama-cpp. gpt4all 2.8's llama.cpp predates some architectures: SmolLM2 and
other recent models fail with "unknown pre-tokenizer type", and the error says to use --llm llama-cpp.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talkgpt4all.config import MODELS_DIR
from talkgpt4all.conversation import Message
from talkgpt4all.errors import MissingDependencyError, ModelError
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.llm.remote import estimate_tokens
from talkgpt4all.models import gpt4all_models_dir

if TYPE_CHECKING:
    from talkgpt4all.settings import LanguageModel

log = logging.getLogger("talkgpt4all")


@contextlib.contextmanager
def _capture_fd2() -> Iterator[list[str]]:
    """Collect what C code writes to stderr (fd 2) while inside; the lines are in the yielded list."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


def _locate(spec: str | None) -> tuple[str, str | None, bool]:
    """(model file name, folder or None, whether gpt4all may download it) for --model."""
    if spec is None:
        raise ModelError("--llm gpt4all needs --model: a .gguf path, or a GPT4All catalog name")
    path = Path(spec).expanduser()
    for candidate in (path, MODELS_DIR / spec, gpt4all_models_dir() / spec):
        if candidate.is_file():
            return candidate.name, str(candidate.parent), False
    if path.suffix == ".gguf" and (path.is_absolute() or os.sep in spec):
        raise ModelError(f"model not found: {spec}: check the path")
    return spec, None, True  # a catalog name: gpt4all finds it in its folder or downloads it


class GPT4AllChatModel:
    # Each reply resets gpt4all's context and computes the whole prompt: nothing to shift, nothing said.
    shifts_context = False
    last_evaluated: int | None = None

    def __init__(self, settings: LanguageModel) -> None:
        try:
            from gpt4all import GPT4All
        except ImportError as exc:
            raise MissingDependencyError(
                "--llm gpt4all needs the gpt4all package: pip install 'gpt4all>=2.8' "
                "(or pip install -e '.[gpt4all]')"
            ) from exc
        name, folder, download = _locate(settings.model)
        with _capture_fd2() as errors:
            try:
                self.gpt = GPT4All(
                    name,
                    model_path=folder,
                    allow_download=download,
                    device="cpu",
                    n_ctx=settings.context,
                    n_threads=settings.threads,
                    verbose=False,
                )
                self.gpt.model.thread_count()  # raises when the model did not load
            except Exception as exc:
                failure: Exception | None = exc
            else:
                failure = None
        if failure is not None:
            detail = " ".join(
                line for line in errors if "error" in line.lower() and "cuda" not in line.lower()
            )
            too_new = re.search(r"unknown (pre-tokenizer type|model architecture): '[^']*'", detail)
            if too_new:
                raise ModelError(
                    f"gpt4all's llama.cpp is too old for {name} ({too_new.group(0)}): use --llm llama-cpp"
                ) from failure
            raise ModelError(
                f"gpt4all cannot load {name} ({detail or failure}): use --llm llama-cpp"
            ) from failure
        self.path = Path(self.gpt.config["path"])
        self.context_size = settings.context
        self._formatter = self._chat_formatter(self.path)
        log.info("language model: %s through gpt4all", name)

    @staticmethod
    def _chat_formatter(path: Path) -> Any:
        """The model's own chat template, read from its GGUF metadata (gpt4all 2.8 has no API for it)."""
        from llama_cpp import Llama

        from talkgpt4all.llm.llama_cpp import _quiet_stderr, chat_formatter

        with _quiet_stderr(True):
            vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        return chat_formatter(vocab, path.name)

    def count_tokens(self, messages: list[Message]) -> int:
        return estimate_tokens(messages)

    def stream(self, messages: list[Message], options: GenerationOptions) -> Generator[str, None, None]:
        result = self._formatter(messages=messages)
        stops = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        stop = threading.Event()
        text = ""

        def keep_going(_token_id: int, _piece: str) -> bool:
            return not stop.is_set()

        pieces = self.gpt.model.prompt_model_streaming(
            result.prompt,
            "%1",
            keep_going,
            n_predict=options.max_tokens,
            temp=options.temperature,
            reset_context=True,
            special=True,
        )
        try:
            for piece in pieces:
                text += piece
                if any(s in text for s in stops):
                    stop.set()
                    cut = min(text.find(s) for s in stops if s in text)
                    tail = piece[: max(0, len(piece) - (len(text) - cut))]
                    if tail:
                        yield tail
                    break
                yield piece
        finally:
            stop.set()
            for _ in pieces:  # let the generation thread finish
                pass

    def close(self) -> None:
        self.gpt.close()
