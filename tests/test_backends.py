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

from conftest import CHAT, ROOT, reply_line, run_chat, wait_for_turns
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


def test_openai_non_ascii_replies_arrive_intact(tmp_path: Path):
    server = _serve(_Utf8Server)
    log = tmp_path / "t.jsonl"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        run = run_chat(
            "--llm", "openai", "--llm-url", url, "--model", "m", "--text", "--no-play",
            "--transcript", str(log), stdin="Répète: café naïve résumé, 你好世界\n",
        )  # fmt: skip
    finally:
        server.shutdown()
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

    server = _serve(Failing)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        run = run_chat(
            "--llm", "openai", "--llm-url", url, "--model", "m", "--text", "--no-play", stdin="hi\n"
        )
    finally:
        server.shutdown()
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "answered 500 model crashed" in run.stderr
