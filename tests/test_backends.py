"""The other LLM back ends, against real servers and real models on this machine.

--llm binary runs bin/llama-server (built from llama.cpp source by `python chat.py --build-binary`, which
.ci/run does); --llm openai talks to a llama-server the test starts on loopback; --llm gpt4all loads a
GGUF with the gpt4all package.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CHAT, ROOT, Run, reply_line, run_chat, wait_for_turns
from talkgpt4all.models import starter_gguf

SERVER = ROOT / "bin" / "llama-server"
QUESTION = "What is the capital of France?"
DETERMINISTIC = ("--temperature", "0", "--seed", "1")


def need_server() -> Path:
    if not SERVER.is_file():
        pytest.fail(f"no {SERVER}: build it with `python chat.py --build-binary` (.ci/run does)")
    return SERVER


def server_processes() -> list[int]:
    """Running llama-server processes started from this checkout's bin/."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe") == str(SERVER.resolve()):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_binary_two_turns_remember_and_leave_no_process(tmp_path: Path):
    need_server()
    before = set(server_processes())
    log = tmp_path / "t.jsonl"
    run = run_chat(
        "--llm",
        "binary",
        "--text",
        "--no-play",
        "--transcript",
        str(log),
        *DETERMINISTIC,
        stdin=f"{QUESTION}\nAnd what is its most famous tower?\n",
    )
    assert run.returncode == 0, run.stderr
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert "paris" in first["reply"].lower()
    # prompt_tokens are counted by the server with the model's own template: turn 2 holds turn 1.
    assert second["prompt_tokens"] > first["prompt_tokens"] + 5
    assert set(server_processes()) == before, "llama-server was left running"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def test_binary_restarts_when_the_server_dies_between_turns(tmp_path: Path):
    need_server()
    log = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CHAT),
            "--llm",
            "binary",
            "--text",
            "--no-play",
            "--transcript",
            str(log),
            *DETERMINISTIC,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(f"{QUESTION}\n")
        proc.stdin.flush()
        wait_for_turns(log)
        [server] = _children(proc.pid)
        os.kill(server, signal.SIGKILL)  # the server dies between turns
        out, err = proc.communicate("Say that again.\n", timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(turns) == 2 and turns[1]["reply"]
    assert "restarting" in err
    assert out.count("AI: ") == 2


def test_binary_missing_says_how_to_build_it(tmp_path: Path):
    run = run_chat("--llm", "binary", "--binary", str(tmp_path / "nope"), "--text", "--no-play", stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1 and "nope" in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def llama_server() -> Iterator[str]:
    """A real llama-server with the starter model on a loopback port; yields its API URL."""
    need_server()
    port = _free_port()
    proc = subprocess.Popen(
        [str(SERVER), "-m", str(starter_gguf()), "--host", "127.0.0.1", "--port", str(port), "-c", "2048"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import requests

    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "llama-server did not start"
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def test_openai_server_streams_a_reply_then_a_stopped_server_is_one_clear_line(llama_server: str, tmp_path):
    log = tmp_path / "t.jsonl"
    run = run_chat(
        "--llm",
        "openai",
        "--llm-url",
        llama_server,
        "--text",
        "--no-play",
        "--transcript",
        str(log),
        *DETERMINISTIC,
        stdin=f"{QUESTION}\n",
    )
    assert run.returncode == 0, run.stderr
    assert "paris" in reply_line(run.stdout).lower()
    assert json.loads(log.read_text())["timings"]["llm_first_token"] > 0


def test_openai_unreachable_server_is_one_clear_line():
    port = _free_port()  # nothing listens there
    run = run_chat(
        "--llm",
        "openai",
        "--llm-url",
        f"http://127.0.0.1:{port}/v1",
        "--model",
        "x",
        "--text",
        "--no-play",
        stdin=f"{QUESTION}\n",
    )
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "cannot reach the LLM server" in run.stderr and "--llm-url" in run.stderr


class _DyingServer(http.server.BaseHTTPRequestHandler):
    """Answers the warm-up request whole; then streams two pieces of a reply and drops the connection,
    as a crashing server does."""

    requests_seen = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        _DyingServer.requests_seen += 1
        if _DyingServer.requests_seen == 1:
            done = {"choices": [{"delta": {"content": "Hi"}, "finish_reason": "length"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            return
        for word in ("The capital", " of France"):
            chunk = {"choices": [{"delta": {"content": word}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args: object) -> None:
        pass


def test_openai_server_dying_mid_reply_is_one_clear_line():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DyingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        run = run_chat(
            "--llm", "openai", "--llm-url", url, "--model", "m", "--text", "--no-play", stdin=f"{QUESTION}\n"
        )
    finally:
        server.shutdown()
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "mid-reply" in run.stderr or "without finishing" in run.stderr
    assert "The capital of France" in run.stdout  # what came before the crash was shown


@pytest.fixture(scope="module")
def gpt4all_loadable_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with its pre-tokenizer renamed to one gpt4all 2.8's older llama.cpp knows ("gpt-2",
    the same byte-level BPE family), written with the gguf package's own metadata tool."""
    pytest.importorskip("gguf", reason="install the test extra")
    out = tmp_path_factory.mktemp("gguf") / "smollm2-gpt2-pre.gguf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gguf.scripts.gguf_new_metadata",
            "--pre-tokenizer",
            "gpt-2",
            "--force",
            str(starter_gguf()),
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_gpt4all_loads_and_generates(gpt4all_loadable_gguf: Path):
    pytest.importorskip("gpt4all", reason="install the gpt4all extra (.ci/run does)")
    run = run_chat(
        "--llm",
        "gpt4all",
        "--model",
        str(gpt4all_loadable_gguf),
        "--text",
        "--no-play",
        *DETERMINISTIC,
        stdin=f"{QUESTION}\n",
    )
    assert run.returncode == 0, run.stderr
    assert "paris" in reply_line(run.stdout).lower()


def test_gpt4all_too_old_for_smollm2_says_use_llama_cpp():
    pytest.importorskip("gpt4all", reason="install the gpt4all extra (.ci/run does)")
    run = run_chat("--llm", "gpt4all", "--model", str(starter_gguf()), "--text", "--no-play", stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "--llm llama-cpp" in run.stderr and "pre-tokenizer" in run.stderr


def test_list_models_shows_models_dir_and_starter():
    run = run_chat("--list-models")
    assert run.returncode == 0
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in run.stdout and "--model" in run.stdout


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "term", "crash"]
)
def test_binary_server_never_outlives_the_program(tmp_path: Path, sig: signal.Signals):
    need_server()
    before = set(server_processes())
    log = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(CHAT), "--llm", "binary", "--text", "--no-play", "--transcript", str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin
    proc.stdin.write(f"{QUESTION}\n")
    proc.stdin.flush()
    wait_for_turns(log)
    assert set(server_processes()) - before, "no server was running"
    proc.send_signal(sig)
    proc.wait(30)
    deadline = time.monotonic() + 10
    while set(server_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(server_processes()) == before, f"llama-server outlived the program ({sig.name})"


class _Utf8Server(http.server.BaseHTTPRequestHandler):
    """Streams a reply in accented Latin and Chinese, as llama-server does: "text/event-stream" with no
    charset (so a client that trusts HTTP's default decodes it as ISO-8859-1), split mid-character
    across writes. The last event carries llama-server's timings."""

    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.status != 200:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "model crashed"}}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = ["Café", " naïve", " résumé.", " 你好，", "世界。"]
        body = b""
        for i, word in enumerate(words):
            last = i == len(words) - 1
            event = {"choices": [{"delta": {"content": word}, "finish_reason": "stop" if last else None}]}
            if last:
                event["timings"] = {"prompt_n": 7, "cache_n": 40}
            body += f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
        body += b"data: [DONE]\n\n"
        for start in range(0, len(body), 5):  # small writes: characters split across packets
            self.wfile.write(body[start : start + 5])
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chat_with(handler: type[http.server.BaseHTTPRequestHandler], *args: str, stdin: str) -> Run:
    """chat.py --text against a stand-in OpenAI server answering with handler."""
    server = _serve(handler)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return run_chat(
            "--llm", "openai", "--llm-url", url, "--model", "m", "--text", "--no-play", *args, stdin=stdin
        )
    finally:
        server.shutdown()


def test_openai_non_ascii_replies_arrive_intact(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    run = chat_with(_Utf8Server, "--transcript", str(log), stdin="Répète: café naïve résumé, 你好世界\n")
    assert run.returncode == 0, run.stderr
    assert reply_line(run.stdout) == "Café naïve résumé. 你好，世界。"
    turn = json.loads(log.read_text())
    assert (
        turn["reply"] == "Café naïve résumé. 你好，世界。"
        and turn["user"] == "Répète: café naïve résumé, 你好世界"
    )
    assert turn["prompt_evaluated"] == 7  # what the server said it computed


def test_openai_server_error_500_is_one_clear_line():
    class Failing(_Utf8Server):
        status = 500

    run = chat_with(Failing, stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "answered 500 model crashed" in run.stderr


FAKE_SERVER = '''#!{python}
"""A stand-in llama-server: answers /health, and dies on /crash, saying why as llama.cpp does."""
import http.server, os, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
print("fake llama-server listening on", port, flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            print("GGML_ASSERT(n_tokens_all <= cparams.n_batch) failed", flush=True)
            os._exit(134)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{{}}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def test_a_restarted_server_keeps_the_log_of_why_it_died(tmp_path: Path, monkeypatch):
    """llama-server's log still says why it crashed after the restart. (Before, each start truncated
    the log, so the reason was gone by the time the user looked.)"""
    import requests

    from talkgpt4all.llm import binary

    monkeypatch.setenv("TALKGPT4ALL_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "llama-server"
    fake.write_text(FAKE_SERVER.format(python=sys.executable))
    fake.chmod(0o755)
    server = binary.LlamaServer(fake, tmp_path / "model.gguf", 512, None, False)
    try:
        server.start()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/crash", timeout=5)
        server.process.wait(10)
        server.start()  # the restart path
        log = server.log_path.read_text()
    finally:
        server.stop()
    assert "GGML_ASSERT(n_tokens_all <= cparams.n_batch) failed" in log
    assert log.count("fake llama-server listening") == 2


def test_the_server_is_started_without_running_python_in_the_forked_child(tmp_path: Path, monkeypatch):
    """The program has threads when it starts llama-server: code run between fork and exec (a
    preexec_fn, here ctypes calling prctl) can deadlock on a lock another thread held. The death signal
    is set by setpriv instead, in the child's own exec."""
    import subprocess as sp

    from talkgpt4all.llm import binary

    calls: list[tuple[list[str], dict]] = []
    real = sp.Popen

    def recording(argv, **kwargs):
        calls.append((list(argv), kwargs))
        return real(argv, **kwargs)

    monkeypatch.setattr(binary.subprocess, "Popen", recording)
    monkeypatch.setenv("TALKGPT4ALL_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "llama-server"
    fake.write_text(FAKE_SERVER.format(python=sys.executable))
    fake.chmod(0o755)
    server = binary.LlamaServer(fake, tmp_path / "model.gguf", 512, None, False)
    try:
        server.start()
    finally:
        server.stop()
    [(argv, kwargs)] = calls
    assert kwargs.get("preexec_fn") is None and kwargs.get("start_new_session") is True
    assert Path(argv[0]).name == "setpriv" and argv[1:4] == ["--pdeathsig", "TERM", "--"]
    assert argv[4] == str(fake)


HOSTILE_REPLY = (
    "Hello \x1b]0;pwned\x07there \x1b[2Jfriend :smile: [bold]x[/bold] \x1b]52;c;cm0gLXJmIH4=\x07"
    "and \x9b31mred\x07 \u202egnol\u202c end."
)


class _HostileServer(_Utf8Server):
    """A server whose reply, and whose error message, hold terminal escape sequences: a window title
    (OSC 0), a clipboard write (OSC 52), a screen clear, a bell, a C1 CSI, a bidi override, an emoji
    code and Rich markup."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.status != 200:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "bad \x1b]0;pwned\x07 model"}}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in (HOSTILE_REPLY[:9], HOSTILE_REPLY[9:30], HOSTILE_REPLY[30:]):
            event = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        done = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())


SHOWN = "Hello there friend :smile: [bold]x[/bold] and red gnol end."


def test_a_reply_full_of_terminal_escapes_is_shown_as_text(tmp_path: Path):
    """Escape and control sequences from a model or a server are removed before anything is shown,
    spoken or kept; Rich's markup and emoji codes are shown as typed. The transcript and the screen
    agree. (Before, they reached the terminal, which ran them: the window title became "pwned".)"""
    log = tmp_path / "t.jsonl"
    run = chat_with(_HostileServer, "--transcript", str(log), stdin="say \x1b[31mit\n")
    assert run.returncode == 0, run.stderr
    for stream in (run.stdout, run.stderr):
        assert not any(ch in stream for ch in "\x1b\x07\x9b\u202e"), repr(stream)
    assert reply_line(run.stdout) == SHOWN
    turn = json.loads(log.read_text())
    assert turn["reply"] == SHOWN and turn["user"] == "say it"


def test_a_server_error_full_of_terminal_escapes_is_one_plain_line():
    class Failing(_HostileServer):
        status = 500

    run = chat_with(Failing, stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr and "answered 500 bad" in run.stderr


def test_in_a_terminal_a_hostile_reply_leaves_the_window_title_alone():
    """As a user sees it: in tmux, the reply is printed whole and the window title is not changed."""
    import shutil

    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (.ci/run installs it)")
    server = _serve(_HostileServer)
    name = f"hostile{os.getpid()}"
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    command = f"{sys.executable} {CHAT} --llm openai --llm-url {url} --model m --text --no-play; sleep 600"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "20", command], check=True)
    try:
        subprocess.run(["tmux", "select-pane", "-t", name, "-T", "talk"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", name, "Hello?", "Enter"], check=True)
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline and "end." not in screen:
            time.sleep(0.2)
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-J", "-t", name], capture_output=True, text=True
            ).stdout
        title = subprocess.run(
            ["tmux", "display-message", "-p", "-t", name, "#{pane_title}"], capture_output=True, text=True
        ).stdout.strip()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        server.shutdown()
    assert "AI: " + SHOWN in screen, screen
    assert title == "talk", title


def test_binary_computes_the_prompt_in_the_pause_and_the_turn_finds_it_cached():
    """Hands-free, speculation asks llama-server for the prompt alone (n_predict 0, cache_prompt) while
    the user pauses; the turn's own request then computes next to nothing. Tokens are counted, not
    timed."""
    import numpy as np

    from fakes import FakeDisplay, FakeTranscriber, make_session, settings
    from talkgpt4all.config import PLATFORMS
    from talkgpt4all.llm.binary import BinaryChatModel
    from talkgpt4all.settings import LanguageModel

    need_server()
    chat = BinaryChatModel(LanguageModel(engine="binary", max_tokens=16, temperature=0), PLATFORMS["linux"])
    sent: list[tuple[str, dict]] = []
    request = chat.client.request

    def recording(method: str, path: str, base: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((path, dict(kwargs.get("json") or {})))
        return request(method, path, base=base, **kwargs)

    chat.client.request = recording  # type: ignore[method-assign]
    config = settings(llm={"temperature": 0.0, "seed": 1, "max_tokens": 16})
    session = make_session(chat, FakeDisplay(), transcriber=FakeTranscriber(QUESTION), config=config)
    try:
        audio = np.concatenate([np.full(16000, 0.3, np.float32), np.zeros(1600, np.float32)])
        session.speculate(audio)
        deadline = time.monotonic() + 60
        while not any(path == "/chat/completions" for path, _ in sent):  # prefilled, then begun
            assert time.monotonic() < deadline, sent
            time.sleep(0.05)
        [prefill] = [body for path, body in sent if path == "/completion"]
        assert prefill["n_predict"] == 0 and prefill["cache_prompt"] is True
        in_the_pause = len(sent)
        result = session.hear(audio, time.perf_counter())
        assert result is not None and result.speculated and "Paris" in result.reply, result
        assert not any(path == "/completion" for path, _ in sent[in_the_pause:])  # not computed again
        # The prompt was computed in the pause: the reply's own request found all but its last token or
        # so in the server's cache; prompt_evaluated counts both.
        assert chat.last_evaluated is not None and chat.last_evaluated <= 2, chat.last_evaluated
        assert result.prompt_evaluated is not None
        assert result.prompt_evaluated - chat.last_evaluated >= result.prompt_tokens - 2, result
    finally:
        session.close()


@pytest.mark.parametrize(
    ("cores", "given", "expected"),
    [(2, None, (1, 2)), (8, None, (7, 8)), (1, None, (1, 1)), (2, 2, (2, 2)), (8, 3, (3, 3))],
)
def test_the_reply_leaves_one_core_to_the_voice_unless_threads_are_given(monkeypatch, cores, given, expected):
    """By default the reply is written on every core but one (the voice runs beside it), the prompt on
    all of them; --threads is the user's choice, for both."""
    from talkgpt4all.llm.llama_cpp import cpu_threads

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert cpu_threads(given) == expected


def test_the_in_process_model_is_given_those_threads_and_llama_server_its_own(tmp_path: Path):
    from talkgpt4all.llm import binary
    from talkgpt4all.llm.llama_cpp import LlamaCppChatModel, cpu_threads
    from talkgpt4all.settings import LanguageModel

    writing, prompting = cpu_threads(None)
    chat = LlamaCppChatModel(LanguageModel(context=512))
    try:
        assert (chat.llm.n_threads, chat.llm.n_threads_batch) == (writing, prompting)
    finally:
        chat.close()
    # llama-server chooses its own (one fewer measured no better there), unless --threads is given
    assert "-t" not in binary.LlamaServer(tmp_path / "s", tmp_path / "m.gguf", 512, None, False).args
    args = binary.LlamaServer(tmp_path / "s", tmp_path / "m.gguf", 512, 3, False).args
    assert args[args.index("-t") + 1] == "3"
