"""A GGUF model run in process by llama-cpp-python, with the chat template from the model's metadata."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talkgpt4all.conversation import Message
from talkgpt4all.errors import ModelError, UsageError
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.models import resolve_gguf

if TYPE_CHECKING:
    from talkgpt4all.settings import LanguageModel

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


def _unloadable(path: Path) -> ModelError:
    return ModelError(
        f"cannot load {path} (corrupt, incomplete, or an architecture this llama.cpp does not know): "
        "download it again, or pass another --model"
    )


def trained_context(path: Path) -> int | None:
    """The context the model was trained on, from its GGUF metadata (its vocabulary alone is loaded);
    ModelError when the file cannot be read as a model."""
    from llama_cpp import Llama

    _check_gguf(path)
    try:
        with _quiet_stderr(not log.isEnabledFor(logging.DEBUG)):
            vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise _unloadable(path) from exc
    try:
        metadata: dict[str, str] = vocab.metadata
        length = metadata.get(f"{metadata.get('general.architecture')}.context_length")
        return int(length) if length and length.isdigit() else None
    finally:
        vocab.close()


def check_context(path: Path, context: int) -> None:
    """A context longer than the model was trained on is a usage error, found before its memory is
    asked for (llama.cpp would try, and a machine can run out of it)."""
    trained = trained_context(path)
    if trained is not None and context > trained:
        raise UsageError(
            f"--context {context} is more than {path.name} was trained on ({trained} tokens): use "
            f"--context {trained} or less"
        )


# A llama.cpp build made for another CPU, or with kernels this one cannot run (ggml's AMX kernels on the
# Intel Xeons this project is tested on, which report AMX and die with SIGILL at its first instruction),
# kills the process at the first prompt with no word. So each build is tried once on each CPU, in a child
# process, before the model is used: a crash there is one line saying how to rebuild.
PROBE = (
    "import sys\n"
    "from llama_cpp import Llama\n"
    "model = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)\n"
    "model.eval(model.tokenize(b'Hello there, how are you?'))\n"
)
PROBE_TIMEOUT = 120.0  # seconds
CRASHES = {-signal.SIGILL: "SIGILL", -signal.SIGSEGV: "SIGSEGV", -signal.SIGBUS: "SIGBUS"}
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def _build() -> str:
    """What identifies this llama.cpp build on this CPU: its version and features, and the CPU's."""
    import hashlib
    import platform

    import llama_cpp

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as lines:
        cpu = next((line for line in lines if line.startswith("flags")), "")
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    text = f"{llama_cpp.__version__}|{info}|{platform.machine()}|{cpu}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_build(path: Path, python: str = sys.executable) -> None:
    """ModelError, with the command that fixes it, when this llama.cpp build crashes on this CPU (found
    once per build and CPU, by running the model in a child process; remembered in the cache)."""
    import json
    import subprocess

    import llama_cpp

    from talkgpt4all.models import cache_dir

    record = cache_dir() / "llama-cpp-builds.json"
    try:
        verdicts = json.loads(record.read_text())
    except (OSError, ValueError):
        verdicts = {}
    build = _build()
    verdict = verdicts.get(build)
    if verdict is None:
        log.info("trying this llama.cpp build on this CPU (once)")
        try:
            done = subprocess.run(
                [python, "-c", PROBE, str(path)], capture_output=True, timeout=PROBE_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return  # no verdict: the model itself is tried
        verdict = CRASHES.get(done.returncode, "ok" if done.returncode == 0 else None)
        if verdict is None:
            return  # it failed some other way (the model, memory): the load here says why
        verdicts[build] = verdict
        with contextlib.suppress(OSError):
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(verdicts, indent=1))
    if verdict == "ok":
        return
    version = llama_cpp.__version__
    if "AMX" in llama_cpp.llama_print_system_info().decode(errors="replace"):
        how = (
            f"this llama-cpp-python was built with AMX kernels, which crash on this CPU ({verdict}): rebuild "
            f"it without them: CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'\" pip "
            f"install --force-reinstall --no-cache-dir --no-deps llama-cpp-python=={version}"
        )
    else:
        how = (
            f"this llama-cpp-python crashes on this CPU ({verdict}; built for another?): rebuild it here: "
            f"pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python=={version}"
        )
    raise ModelError(how)


def chat_formatter(llm: Any, name: str) -> Any:
    """The model's own chat template, from its GGUF metadata, as llama-cpp-python formats it (ChatML
    for the rare model without one). llm is a llama_cpp.Llama, loaded whole or vocab_only."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        log.warning("%s has no chat template; using ChatML", name)
    model: Any = llm._model  # the token texts the template needs are only there
    eos, bos = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template or CHATML,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )


CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


def for_template(messages: list[Message]) -> list[Message]:
    """Messages as chat templates take them: a call's arguments as an object (the OpenAI shape, as the
    history keeps it, has them as JSON text)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            calls = [_arguments_as_object(call) for call in calls]
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def _arguments_as_object(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # else shown as written
            function["arguments"] = json.loads(arguments) if arguments.strip() else {}
    return {**call, "function": function}


def call_grammar(tools: list[dict[str, Any]], key: str = "arguments") -> Any:
    """A grammar for one call to one of these tools, as JSON: {"name": <a tool's>, "arguments": <valid
    for its schema>} (Qwen2.5, Hermes), or with key "parameters" (Llama 3.2's bare calls)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    options = []
    for tool in tools:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, key: parameters},
                "required": ["name", key],
                "additionalProperties": False,
            }
        )
    schema = options[0] if len(options) == 1 else {"oneOf": options}
    return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)


def _call_begun(written: str) -> str | None:
    """Where a call begins in what is written so far: the text up to and including `<tool_call>`, or,
    when the reply opens with "{" (a bare call), the blank before it (the grammar writes the object
    whole). None while no call has begun."""
    if CALL_OPEN in written:
        return written[: written.index(CALL_OPEN) + len(CALL_OPEN)]
    stripped = written.lstrip()
    if stripped.startswith("{"):
        return written[: len(written) - len(stripped)]
    return None


def cpu_threads(threads: int | None) -> tuple[int, int]:
    """The threads the in-process model writes the reply with, and computes a prompt with: --threads for both
    when it is given. By default a prompt gets every core, and the reply one core fewer: the voice runs
    beside it (the audio callbacks, the voice activity model, the synthesis of the next sentence), and
    llama.cpp's threads wait for each other at every step, so one of them descheduled stalls them all.
    On two cores with the starter model, one thread wrote the first sentence sooner on the devices
    (bench/devices.py: TTFA p50 0.843 against 0.943 s) though it is a little slower alone."""
    if threads:
        return threads, threads
    cores = os.cpu_count() or 1
    return max(1, cores - 1), cores


class LlamaCppChatModel:
    def __init__(self, settings: LanguageModel, gpu: bool = False) -> None:
        from llama_cpp import Llama

        path = resolve_gguf(settings.model)
        check_context(path, settings.context)
        check_build(path)
        debug = log.isEnabledFor(logging.DEBUG)
        threads, batch_threads = cpu_threads(settings.threads)
        try:
            with _quiet_stderr(not debug):
                self.llm = Llama(
                    model_path=str(path),
                    n_ctx=settings.context,
                    n_threads=threads,
                    n_threads_batch=batch_threads,
                    n_gpu_layers=-1 if gpu else 0,
                    seed=settings.seed if settings.seed >= 0 else 0xFFFFFFFF,
                    verbose=debug,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            if "llama_context" in str(exc):  # the model loaded; its context could not be made
                raise ModelError(
                    f"cannot make a context of {settings.context} tokens for {path.name} (not enough "
                    "memory?): lower --context"
                ) from exc
            raise _unloadable(path) from exc
        self.path = path
        # llama.cpp may round its context up (to a multiple of 256), but llama-cpp-python's own token
        # buffer keeps the size asked for: the smaller one is the real limit.
        self.context_size = min(settings.context, self.llm.n_ctx())
        self.formatter = chat_formatter(self.llm, path.name)
        from llama_cpp import llama_cpp as lib

        self._lib = lib
        memory = self.llm._ctx.memory
        self.shifts_context = bool(
            settings.context_shift and memory is not None and lib.llama_memory_can_shift(memory)
        )
        self.last_evaluated: int | None = None
        log.info("language model: %s (context %d tokens)", path.name, self.context_size)

    def tool_support(self) -> str | None:
        """Tools work with a chat template that lays them out (Qwen2.5's, Llama 3.2's, Hermes-style)."""
        template = self.llm.metadata.get("tokenizer.chat_template") or ""
        if "tools" not in template:
            return f"the chat template of {self.path.name} has no tool calls"
        return None

    def _prompt(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> tuple[list[int], Any]:
        result = self.formatter(messages=for_template(messages), tools=tools or None)
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
            if not llm._ctx.kv_cache_seq_rm(0, head_p, head_c):
                break  # the cache cannot drop those tokens: what is kept so far is used, the rest recomputed
            llm._ctx.kv_cache_seq_shift(0, head_c, head_c + run, head_p - head_c)
            llm.input_ids[head_p : head_p + run] = cached[head_c : head_c + run]
            head_c, head_p, moved = head_c + run, head_p + run, True
        if moved:
            # generate() now finds these head_p tokens cached, drops what is left after them, and
            # computes only the rest of the prompt.
            llm.n_tokens = head_p

    def prefill(
        self, messages: list[Message], cancelled: threading.Event, tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Compute the prompt for these messages (and tools) into the cache, without generating; the
        tokens computed. stream() with the same messages then starts sampling at once. Stops between
        batches when cancelled; what was computed stays a valid cache either way."""
        tokens, _ = self._prompt(messages, tools)
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
        computed: int = llm.n_tokens - start
        return computed

    def stream(
        self,
        messages: list[Message],
        options: GenerationOptions,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
    ) -> Generator[str, None, None]:
        """The reply, as it is written. With tools, a call the model begins is written on under a grammar
        made from the tools' schemas, so its name is a tool's and its arguments valid JSON for it: after
        `<tool_call>` (Qwen2.5, Hermes), or from a reply's first "{" (Llama 3.2 writes a call as a bare
        JSON object, {"name": ..., "parameters": ...}). tool_choice "required" makes the reply a call
        from its first token."""
        tokens, result = self._prompt(messages, tools)
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        if self.shifts_context:
            self._reuse_cache(tokens)
        evaluated_before = self._evaluated_so_far()
        self.last_evaluated = None
        budget = options.max_tokens
        written, bare = "", False
        try:
            if not tools or tool_choice != "required":
                for text in self._complete(tokens, budget, options, stop, result.stopping_criteria):
                    written += text
                    head = _call_begun(written) if tools else None
                    if head is not None:
                        # The call's own tokens, from here on, under the grammar.
                        yield text[: max(0, len(text) - (len(written) - len(head)))]
                        written, bare = head, not head.endswith(CALL_OPEN)
                        break
                    yield text
                else:
                    return
            else:
                written = CALL_OPEN
                yield CALL_OPEN
            assert tools  # a call is begun only with tools
            prefix = tokens + self.llm.tokenize(written.encode("utf-8"), add_bos=False, special=True)
            budget = max(16, budget - (len(prefix) - len(tokens)))
            grammar = call_grammar(tools, "parameters" if bare else "arguments")
            for text in self._complete(prefix, budget, options, stop, result.stopping_criteria, grammar):
                yield text
            if not bare:
                yield CALL_CLOSE
        finally:
            self.last_evaluated = self._evaluated_so_far() - evaluated_before

    def _complete(
        self,
        tokens: list[int],
        max_tokens: int,
        options: GenerationOptions,
        stop: list[str],
        stopping_criteria: Any,
        grammar: Any = None,
    ) -> Generator[str, None, None]:
        chunks = self.llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=options.temperature,
            seed=options.seed if options.seed >= 0 else None,
            stop=stop,
            stopping_criteria=stopping_criteria,
            grammar=grammar,
            stream=True,
        )
        try:
            for chunk in chunks:
                text = chunk["choices"][0]["text"]  # type: ignore[index]
                if text:
                    yield text
        finally:
            if isinstance(chunks, Generator):
                chunks.close()

    def close(self) -> None:
        self.llm.close()
