"""MCP servers as tools (issue 18): named in the config file, started for the session through the `mcp`
SDK, their tools given to the model.

The server is real: tests/mcp_notes_server.py, made with the SDK's server side, run on stdio; its tools
write a notes file the tests read. The model is a stand-in OpenAI server that streams `tool_calls` as the
OpenAI API does (pieces of the arguments' JSON by index), so the whole loop runs: a spoken question
(espeak-ng), Whisper, the call, the server's effect, the result sent back in the tool role, and a spoken
answer that uses it.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from conftest import ROOT, Ears, reply_line, run_chat, speak_to_file, wer
from talkgpt4all.settings import McpServer
from talkgpt4all.tools import Toolbox, ToolCall
from talkgpt4all.tools.mcp import McpServers

SERVER = ROOT / "tests" / "mcp_notes_server.py"


def notes_config(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    """A config file naming the notes server (and what else is given), and the notes file it writes."""
    notes = tmp_path / "notes.txt"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[mcp.notes]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(SERVER))}]
env = {{ NOTES_FILE = {json.dumps(str(notes))} }}
{extra}
""",
        encoding="utf-8",
    )
    return config, notes


def servers_for(notes: Path) -> list[int]:
    """The notes servers still running for this notes file (found by their environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"NOTES_FILE={notes}".encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def notes_server(notes: Path, **kwargs: Any) -> McpServer:
    return McpServer(
        "notes", command=sys.executable, args=(str(SERVER),), env=(("NOTES_FILE", str(notes)),), **kwargs
    )


# ------------------------------------------------------------------ the config file


@pytest.mark.parametrize(
    "table, said",
    [
        ('[mcp.a]\nargs = ["x"]\n', "needs a command"),
        ('[mcp.a]\ncommand = "x"\nurl = "http://h/mcp"\n', "not both"),
        ('[mcp.a]\nurl = "ftp://h/mcp"\n', "http:// or https://"),
        ('[mcp.a]\ncommand = "x"\nargs = "-m server"\n', "args should be a list"),
        ('[mcp.a]\ncommand = "x"\ntimeout = 0\n', "timeout should be seconds"),
        ('[mcp.a]\ncommand = "x"\nenviron = { A = "1" }\n', "unknown key 'environ'"),
        ('[mcp.a]\ncommand = "x"\nenv = { A = 1 }\n', "env should be a table of text"),
        ('mcp = "notes"\n', "should be tables"),
    ],
)
def test_a_bad_mcp_table_is_one_line_and_exit_2(tmp_path: Path, table: str, said: str):
    config = tmp_path / "config.toml"
    config.write_text(table, encoding="utf-8")
    run = run_chat("--config", str(config), "--print-config")
    assert run.returncode == 2, run.stderr
    assert len(run.stderr_lines) == 1 and said in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_print_config_shows_the_servers_and_hides_their_environment(tmp_path: Path):
    config, _ = notes_config(tmp_path, 'confirm = ["add_note"]\n')
    text = (
        config.read_text()
        + '\n[mcp.home]\nurl = "http://127.0.0.1:1/mcp"\nheaders = { Authorization = "Bearer s3cret" }\n'
    )
    config.write_text(text, encoding="utf-8")
    run = run_chat("--config", str(config), "--print-config")
    assert run.returncode == 0, run.stderr
    assert "[mcp.notes]" in run.stdout and "[mcp.home]" in run.stdout
    assert 'confirm = ["add_note"]' in run.stdout
    assert 'NOTES_FILE = "(hidden)"' in run.stdout and 'Authorization = "(hidden)"' in run.stdout
    assert "s3cret" not in run.stdout and str(tmp_path / "notes.txt") not in run.stdout
    # What it prints is a config file that reads back the same.
    again = tmp_path / "again.toml"
    again.write_text(run.stdout.replace('"(hidden)"', '"x"'), encoding="utf-8")
    assert run_chat("--config", str(again), "--print-config").returncode == 0


def test_list_tools_shows_each_servers_tools_and_a_server_that_fails_in_one_line(tmp_path: Path):
    config, _ = notes_config(tmp_path, '\n[mcp.broken]\ncommand = "/no/such/server"\n')
    run = run_chat("--config", str(config), "--list-tools")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    [notes] = [line for line in lines if "MCP server 'notes'" in line]
    assert "5 tools" in notes and "asks before clear_notes" in notes
    [clear] = [line for line in lines if line.strip().startswith("clear_notes")]
    assert "asks first" in clear and "Delete all" in clear
    [broken] = [line for line in lines if "'broken'" in line]
    assert "did not start: no such command" in broken
    assert "get_time" in run.stdout  # the built-in ones, beside them
    assert "Traceback" not in run.stdout + run.stderr


# ------------------------------------------------------------------ the servers, connected


def test_a_servers_tools_act_a_slow_call_is_cancelled_and_a_dead_server_is_one_line(tmp_path: Path):
    notes = tmp_path / "notes.txt"
    servers = (notes_server(notes), McpServer("missing", command=str(tmp_path / "nothing-here")))
    with McpServers(servers) as connected:
        up = {c.server.name: c for c in connected.start()}
        assert up["missing"].problem is not None and "no such command" in up["missing"].line()
        assert {t.name for t in up["notes"].tools} == {
            "add_note",
            "list_notes",
            "clear_notes",
            "slow_note",
            "crash",
        }
        assert [t.name for t in up["notes"].tools if t.destructive] == ["clear_notes"]
        box = Toolbox()
        for tool in connected.tools():
            box.add(tool)

        done = box.call(ToolCall("add_note", {"text": "buy milk, 买牛奶"}))
        assert not done.error and done.content == "Noted: buy milk, 买牛奶"
        assert notes.read_text(encoding="utf-8") == "buy milk, 买牛奶\n"  # the effect, on disk
        assert box.call(ToolCall("list_notes", {})).content == "buy milk, 买牛奶\n"

        cancelled = threading.Event()
        threading.Timer(0.3, cancelled.set).start()
        began = time.monotonic()
        stopped = box.call(ToolCall("slow_note", {"seconds": 20}), cancelled)
        assert stopped.error and "cancelled" in stopped.content
        assert time.monotonic() - began < 3.0

        dead = box.call(ToolCall("crash", {}))
        assert dead.error and "has stopped" in dead.content and "\n" not in dead.content
        after = box.call(ToolCall("list_notes", {}))  # at once, and still one line
        assert after.error and "has stopped" in after.content
    assert not [t for t in threading.enumerate() if t.name == "mcp"], "the MCP thread outlived the session"
    assert servers_for(notes) == [], "a server process outlived the session"


def test_a_call_past_its_timeout_is_an_error_the_model_hears(tmp_path: Path):
    with McpServers((notes_server(tmp_path / "n.txt", timeout=0.5),)) as connected:
        connected.start()
        box = Toolbox()
        for tool in connected.tools():
            box.add(tool)
        late = box.call(ToolCall("slow_note", {"seconds": 5}))
        assert late.error and "took more than 0.5 s" in late.content


def test_only_the_tools_the_config_names_are_given(tmp_path: Path):
    server = notes_server(tmp_path / "n.txt", tools=("list_notes",), confirm=("list_notes",))
    with McpServers((server,)) as connected:
        [up] = connected.start()
        assert [t.name for t in up.tools] == ["list_notes"] and up.tools[0].destructive
        assert "left out: add_note" in up.line()


# ------------------------------------------------------------------ the whole loop


class StandInModel(http.server.BaseHTTPRequestHandler):
    """An OpenAI chat server whose model calls add_note for the first request of a turn, then answers
    from the tool's result. It keeps every request's body (the class's `requests`)."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._json({"data": [{"id": "stand-in"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        last = body["messages"][-1]
        if last["role"] == "tool":
            events = [{"delta": {"content": piece}} for piece in ("I added ", "bread ", "to your notes.")]
        elif "clear" in json.dumps(last).lower() and body.get("tools"):
            events = [
                {"delta": {"tool_calls": [{"index": 0, "id": "call_clear", "type": "function",
                                           "function": {"name": "clear_notes", "arguments": "{}"}}]}},
            ]  # fmt: skip
        elif "note" in json.dumps(last).lower() and body.get("tools"):
            # The call, streamed as OpenAI does: the id and name first, the arguments in pieces.
            events = [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_abc",
                                "type": "function",
                                "function": {"name": "add_note", "arguments": ""},
                            }
                        ]
                    }
                },
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"text": '}}]}},
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"bread"}'}}]}},
            ]
        else:
            events = [{"delta": {"content": "You asked me to note something."}}]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, event in enumerate(events):
            finish = (
                None if i < len(events) - 1 else ("tool_calls" if "tool_calls" in event["delta"] else "stop")
            )
            chunk = {"choices": [{"index": 0, **event, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.e2e
def test_a_spoken_request_calls_the_mcp_tool_and_the_spoken_answer_uses_its_result(
    tmp_path: Path, ears: Ears
):
    StandInModel.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    config, notes = notes_config(tmp_path)
    asked = "Please add bread to my notes."
    question = speak_to_file(asked, tmp_path / "q.wav")
    out, log = tmp_path / "replies", tmp_path / "t.jsonl"
    try:
        run = run_chat(
            "--config", str(config), "--llm", "openai", "--llm-url", url,
            "--input", str(question), "--save-audio", str(out), "--transcript", str(log), "--no-play",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        # The effect: the server wrote the note.
        assert notes.read_text(encoding="utf-8").strip().lower().rstrip(".") == "bread"
        assert "MCP server 'notes': 5 tools" in run.stderr
        # The model was given the tools, then the result as data, in the tool role.
        first, second = StandInModel.requests[-2:]  # (before them: the warm-up's one token)
        assert "add_note" in {tool["function"]["name"] for tool in first["tools"]}
        call, result = second["messages"][-2:]
        assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "add_note"
        assert result == {
            "role": "tool",
            "tool_call_id": "call_abc",
            "name": "add_note",
            "content": "Noted: bread",
        }
        assert all(m["role"] != "system" or "Noted" not in m["content"] for m in second["messages"])
        # What the user reads and hears is the answer: never the call's JSON.
        [turn] = [json.loads(line) for line in log.read_text().splitlines()]
        assert wer(asked, turn["user"]) <= 0.25, turn["user"]
        assert reply_line(run.stdout) == turn["reply"] == "I added bread to your notes."
        assert "{" not in run.stdout and "add_note" not in run.stdout
        heard = ears.hear(out / "reply-001.wav").lower()
        assert "bread" in heard and "note" in heard and "add_note" not in heard and "text" not in heard, heard
        # The transcript keeps the call and its result; --resume gives them back to the model.
        assert turn["tools"] == [
            {"name": "add_note", "arguments": {"text": "bread"}, "result": "Noted: bread", "id": "call_abc"}
        ]
        again = run_chat(
            "--config", str(config), "--llm", "openai", "--llm-url", url,
            "--text", "--resume", str(log), "--no-play", stdin="What did you just do?\n",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        history = StandInModel.requests[-1]["messages"]
        assert {
            "role": "tool",
            "tool_call_id": "call_abc",
            "name": "add_note",
            "content": "Noted: bread",
        } in history
    finally:
        server.shutdown()


def test_a_tool_the_server_marks_destructive_asks_first_and_no_means_no_call(tmp_path: Path):
    StandInModel.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    config, notes = notes_config(tmp_path)
    notes.write_text("bread\n", encoding="utf-8")
    try:
        run = run_chat(
            "--config", str(config), "--llm", "openai", "--llm-url", url, "--text", "--no-play",
            stdin="Clear my notes.\nNo.\nClear my notes.\nYes.\n",
        )  # fmt: skip
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert servers_for(notes) == [], "the MCP server outlived the program"
    replies = [line for line in run.stdout.splitlines() if line.startswith("AI: ")]
    assert replies[0] == "AI: Shall I clear notes? Say yes or no."
    assert replies[1] == "AI: All right, I won't."
    assert replies[2] == "AI: Shall I clear notes? Say yes or no."
    assert not notes.exists(), "the yes made the call"
    # The tool ran once, after the yes: the model was given one result.
    called = [r for r in StandInModel.requests if r["messages"][-1]["role"] == "tool"]
    assert len(called) == 1 and called[0]["messages"][-1]["content"] == "All notes are deleted."


class RefusingTools(StandInModel):
    """An OpenAI server whose model cannot call tools, as ollama says it: 400 "... does not support
    tools"."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if body.get("tools"):
            data = json.dumps(
                {"error": {"message": "registry.ollama.ai/library/gemma:2b does not support tools"}}
            )
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())
            return
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hello there."}, "finish_reason": "stop"}]}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())


def test_a_server_that_refuses_tools_is_one_line_and_the_conversation_goes_on_without_them():
    RefusingTools.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingTools)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        run = run_chat(
            "--llm", "openai", "--llm-url", url, "--tools", "time", "--text", "--no-play",
            stdin="What time is it?\nAnd now?\n",
        )  # fmt: skip
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert [line for line in run.stdout.splitlines() if line.startswith("AI: ")] == ["AI: Hello there."] * 2
    said = [line for line in (run.stdout + run.stderr).splitlines() if "Tools are off" in line]
    assert len(said) == 1 and "does not support tools" in said[0], run.stdout + run.stderr
    asked = [r for r in RefusingTools.requests if r.get("max_tokens", 0) > 1]
    assert [bool(r.get("tools")) for r in asked] == [True, False, False]  # refused once, then never sent


def test_a_signal_while_a_server_starts_ends_the_program_and_leaves_no_server_behind(tmp_path: Path):
    import signal
    import subprocess

    slow = tmp_path / "slow_server.py"
    slow.write_text("import time\ntime.sleep(120)\n", encoding="utf-8")  # never answers "initialize"
    config = tmp_path / "config.toml"
    config.write_text(
        f"[mcp.slow]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(slow))}]\n"
        f"env = {{ NOTES_FILE = {json.dumps(str(tmp_path / 'marker'))} }}\n",
        encoding="utf-8",
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "chat.py"), "--config", str(config), "--llm", "openai", "--llm-url", url,
         "--text", "--no-play"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # (after the warnings before it, if any)
        while line and "Starting 1 MCP server" not in line:
            line = proc.stderr.readline()
        assert line, "startup never said it was starting the server"
        deadline = time.monotonic() + 10
        while not servers_for(tmp_path / "marker") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert servers_for(tmp_path / "marker"), "the server was never started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        server.shutdown()
    assert servers_for(tmp_path / "marker") == [], "the server outlived the program"
