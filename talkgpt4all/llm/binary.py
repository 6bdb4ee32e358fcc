"""A llama.cpp server executable from bin/, started once for the session and spoken to over loopback.

The server is started with the model on a free port, health-checked while it loads, restarted if it
dies, and stopped on exit, on Ctrl-C and on a crash: on Linux the kernel kills it when this process
dies, however that happens (see _with_death_signal).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talkgpt4all.config import BIN_DIR
from talkgpt4all.conversation import Message
from talkgpt4all.errors import MissingDependencyError, ModelError
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.llm.llama_cpp import REUSE_MIN_TOKENS, check_context
from talkgpt4all.llm.remote import LLMServerError, OpenAIChatModel
from talkgpt4all.models import cache_dir, resolve_gguf

if TYPE_CHECKING:
    from talkgpt4all.config import Platform
    from talkgpt4all.settings import LanguageModel

log = logging.getLogger("talkgpt4all")

START_TIMEOUT = 300  # seconds for the server to load its model


def find_binary(explicit: str | None, name: str) -> Path:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MissingDependencyError(f"--binary {explicit}: no such file")
        return path
    path = BIN_DIR / name
    if not path.is_file():
        raise MissingDependencyError(
            f"no llama.cpp server at {path}: build it with `python chat.py --build-binary` "
            "(about 5 minutes), or pass --binary PATH"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_death_signal(argv: list[str]) -> list[str]:
    """argv run so that Linux sends it SIGTERM when the thread that started it dies (with this process,
    however it dies, even by SIGKILL), set by util-linux's setpriv in the child's own exec. Setting it from
    Python between fork and exec (preexec_fn) is not safe in a program with threads.

    Without setpriv (not Linux, or a system without util-linux), atexit and the signal handlers still
    stop the server on every exit but a SIGKILL."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


class LlamaServer:
    """One llama-server child process."""

    def __init__(
        self, binary: Path, model: Path, context: int, threads: int | None, gpu: bool, reuse: bool = True
    ) -> None:
        self.binary, self.model = binary, model
        # One slot: one conversation, with the whole context and the whole prompt cache to itself.
        self.args = ["-c", str(context), "--n-gpu-layers", "999" if gpu else "0", "-np", "1"]
        if reuse:
            # Shift cached chunks past the turns dropped from the history, as our in-process back end
            # does, instead of computing everything after the system prompt again.
            self.args += ["--cache-reuse", str(REUSE_MIN_TOKENS)]
        # Without --threads, llama-server's own choice: a thread per core. One fewer, as the in-process
        # model takes, measured no better here (bench/devices.py's binary row): the server writes on
        # while the voice holds back reading it.
        if threads:
            self.args += ["-t", str(threads)]
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = cache_dir() / "llama-server.log"
        self._log_start = 0  # where this start's output begins in the log
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        self.port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        log.info("starting %s on port %d (its log: %s)", self.binary.name, self.port, self.log_path)
        # Appended to: after a crash and a restart, the log still says why it crashed.
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            out.flush()
            self._log_start = out.tell()
            self.process = subprocess.Popen(
                _with_death_signal(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Not in our process group: Ctrl-C is ours to handle, and we stop it ourselves.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, name = self.process.returncode, self.binary.name
                raise ModelError(
                    f"{name} exited with {code} while loading {self.model.name}: "
                    f"{self._last_log_line()} (full log: {self.log_path})"
                )
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise ModelError(f"{self.binary.name} did not get ready in {START_TIMEOUT} s: see {self.log_path}")

    def _last_log_line(self) -> str:
        """The last line this start wrote to the log."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "no log"
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "no output"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class BinaryChatModel:
    """--llm binary: llama-server from bin/, used through its OpenAI-compatible streaming API."""

    def __init__(self, settings: LanguageModel, preset: Platform) -> None:
        binary = find_binary(settings.binary, preset.binary)
        model = resolve_gguf(settings.model)
        check_context(model, settings.context)
        self.server = LlamaServer(
            binary, model, settings.context, settings.threads, preset.metal, reuse=settings.context_shift
        )
        self.server.start()
        self.context_size = settings.context
        self.shifts_context = settings.context_shift
        self.client = OpenAIChatModel(f"{self.server.url}/v1", model.name, None, settings.context)
        log.info("language model: %s through %s", model.name, binary.name)

    def _ensure_running(self) -> None:
        if not self.server.alive:
            code = self.server.process.returncode if self.server.process else None
            log.warning("%s stopped (exit %s); restarting it", self.server.binary.name, code)
            self.server.start()
            self.client.url = f"{self.server.url}/v1"

    def _native(self, path: str, body: dict[str, object]) -> dict[str, object]:
        """A request to one of llama-server's own endpoints, beside /v1: its JSON object."""
        answer = self.client.request("POST", path, base=self.server.url, json=body).json()
        if not isinstance(answer, dict):
            raise ValueError(f"{path} answered {type(answer).__name__}, not an object")
        return answer

    def _prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt a chat request with these messages (and tools) computes: the model's own chat
        template, as the server applies it."""
        body: dict[str, object] = {"messages": messages}
        if tools:
            body["tools"] = tools
        prompt = self._native("/apply-template", body)["prompt"]
        if not isinstance(prompt, str):
            raise ValueError("/apply-template gave no prompt")
        return prompt

    def count_tokens(self, messages: list[Message]) -> int:
        """Exact: the server applies the model's own chat template and tokenizes the result."""
        self._ensure_running()
        try:
            tokens = self._native("/tokenize", {"content": self._prompt(messages)})["tokens"]
            if not isinstance(tokens, list):
                raise ValueError("/tokenize gave no tokens")
            return len(tokens)
        except (LLMServerError, KeyError, ValueError):
            return OpenAIChatModel.count_tokens(self.client, messages)

    def prefill(
        self, messages: list[Message], cancelled: threading.Event, tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Compute the prompt for these messages into the server's cache, without writing (a completion
        of n_predict 0, cache_prompt on): the stream that follows finds it there. The tokens computed;
        0 when cancelled first, or when the server cannot (the turn then computes the prompt itself)."""
        if cancelled.is_set():
            return 0
        self._ensure_running()
        try:
            body = {"prompt": self._prompt(messages, tools), "n_predict": 0, "cache_prompt": True}
            timings = self._native("/completion", body).get("timings")
            computed = timings.get("prompt_n") if isinstance(timings, dict) else None
        except (LLMServerError, KeyError, ValueError) as exc:
            log.debug("prefill on %s failed: %s", self.server.binary.name, exc)
            return 0
        return computed if isinstance(computed, int) else 0

    def tool_support(self) -> str | None:
        """llama-server lays tools out with the model's own template (--jinja, its default), or, for a
        template without them, in its generic JSON form: always."""
        return None

    def stream(
        self, messages: list[Message], options: GenerationOptions, tools: list[dict[str, Any]] | None = None
    ) -> Generator[str, None, None]:
        self._ensure_running()
        started = False
        try:
            for text in self.client.stream(messages, options, tools):
                started = True
                yield text
        except LLMServerError:
            if started or self.server.alive:
                raise
            # It died before answering: start it again and ask once more.
            self._ensure_running()
            yield from self.client.stream(messages, options, tools)

    @property
    def last_evaluated(self) -> int | None:
        return self.client.last_evaluated

    def close(self) -> None:
        self.client.close()
        self.server.stop()
