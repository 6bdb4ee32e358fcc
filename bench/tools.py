#!/usr/bin/env python3
"""What one quick tool call adds to a turn: the same typed question, answered with the same words, with no
tools, with a built-in tool (--tools time) and with an MCP server's tool (a stdio server started for the
session: tests/mcp_notes_server.py), side by side in one run.

The model is a stand-in OpenAI server (so the figures are the loop's, not a model's): it takes
--first-token-ms before its first token, as a small local model's prefill would, then writes the reply.
Given tools, it first calls one (get_time, or list_notes), and answers from the result in a second
request; without tools it answers at once. The reply is the same in every row, and is spoken by espeak-ng
into files (--save-audio), so "first audio" is the first sound's synthesis.

Each row is a chat.py --text process asked --turns questions; the rows take turns, round after round.
It prints, per row, the p50 and p95 of the first token and the first audio (from Enter), and the extra
over the row without tools.

    python bench/tools.py [--rounds 3] [--turns 10] [--first-token-ms 100] [--json]

Needs espeak-ng, and `pip install -e '.[tools]'` for the MCP row.
"""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from latency import machine, percentile  # noqa: E402

REPLY = "It is ten forty-two in the morning. Have a good day."
QUESTION = "What time is it?"
ROWS = ("no tools", "built-in get_time", "MCP list_notes")


class StandIn(http.server.BaseHTTPRequestHandler):
    first_token_s = 0.1

    def do_GET(self) -> None:
        data = json.dumps({"data": [{"id": "stand-in"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        names = [tool["function"]["name"] for tool in body.get("tools") or []]
        time.sleep(self.first_token_s if body.get("max_tokens", 0) > 1 else 0.0)
        if names and body["messages"][-1]["role"] == "user":
            name = "get_time" if "get_time" in names else names[0]
            function = {"name": name, "arguments": "{}"}
            call = {"index": 0, "id": "call_1", "type": "function", "function": function}
            chunks: list[dict[str, Any]] = [{"delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]
        else:
            words = REPLY.split(" ")
            chunks = [
                {"delta": {"content": word + ("" if i == len(words) - 1 else " ")}, "finish_reason": None}
                for i, word in enumerate(words)
            ]
            chunks[-1]["finish_reason"] = "stop"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, **chunk}]})}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


def run_row(row: str, url: str, turns: int, work: Path) -> list[dict[str, Any]]:
    """One chat.py process answering `turns` typed questions: each turn's transcript record."""
    log = work / f"{row.replace(' ', '-')}-{time.monotonic_ns()}.jsonl"
    config = work / "config.toml"
    config.write_text(
        f"[mcp.notes]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(ROOT / 'tests' / 'mcp_notes_server.py'))}]\n"
        f"env = {{ NOTES_FILE = {json.dumps(str(work / 'notes.txt'))} }}\n"
        'tools = ["list_notes"]\n',
        encoding="utf-8",
    )
    empty = work / "empty.toml"
    empty.write_text("", encoding="utf-8")
    flags = {
        "no tools": ["--config", str(empty)],
        "built-in get_time": ["--config", str(empty), "--tools", "time"],
        "MCP list_notes": ["--config", str(config)],
    }[row]
    argv = [
        sys.executable, str(ROOT / "chat.py"), "--llm", "openai", "--llm-url", url, "--text",
        "--tts", "espeak", "--no-play", "--save-audio", str(work / "audio"), "--transcript", str(log), *flags,
    ]  # fmt: skip
    done = subprocess.run(argv, input=f"{QUESTION}\n" * turns, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"chat.py failed in row {row!r}: {done.stderr.strip()}")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for record in records:
        if record["reply"] != REPLY:
            sys.exit(f"row {row!r} replied {record['reply']!r}, not the stand-in's reply")
        if (row != "no tools") != bool(record.get("tools")):
            sys.exit(f"row {row!r}: a turn {'without' if row != 'no tools' else 'with'} a tool call")
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=10, help="questions per process (default: 10)")
    parser.add_argument(
        "--first-token-ms", type=float, default=100.0, help="the stand-in model's (default: 100)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    StandIn.first_token_s = args.first_token_ms / 1000
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    timings: dict[str, dict[str, list[float]]] = {row: {"first_token": [], "first_audio": []} for row in ROWS}
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-tools-") as tmp:
        for round_ in range(args.rounds):
            for row in ROWS:
                print(f"round {round_ + 1}: {row}…", file=sys.stderr, flush=True)
                for record in run_row(row, url, args.turns, Path(tmp)):
                    timings[row]["first_token"].append(record["timings"]["llm_first_token"])
                    timings[row]["first_audio"].append(record["timings"]["first_audio"])
    server.shutdown()
    result: dict[str, Any] = {
        "machine": machine(),
        "first_token_ms": args.first_token_ms,
        "turns": args.rounds * args.turns,
        "rows": {},
    }
    base = percentile(timings["no tools"]["first_audio"], 0.5) or 0.0
    for row in ROWS:
        audio = timings[row]["first_audio"]
        result["rows"][row] = {
            "first_token_p50": round(percentile(timings[row]["first_token"], 0.5) or 0, 3),
            "first_audio_p50": round(percentile(audio, 0.5) or 0, 3),
            "first_audio_p95": round(percentile(audio, 0.95) or 0, 3),
            "extra_p50": round((percentile(audio, 0.5) or 0) - base, 3),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['machine']}; stand-in model: {args.first_token_ms:g} ms to its first token")
    print(f"{'row':<20} {'first token p50':>16} {'first audio p50':>16} {'p95':>8} {'extra p50':>10}")
    for row, figures in result["rows"].items():
        print(
            f"{row:<20} {figures['first_token_p50']:>16.3f} {figures['first_audio_p50']:>16.3f} "
            f"{figures['first_audio_p95']:>8.3f} {figures['extra_p50']:>+10.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
