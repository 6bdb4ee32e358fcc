"""Long conversations with the real model: the cache survives trimming, and nothing completed is lost
when the program is killed, hung up on or resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CHAT, ROOT, run_chat, wait_for_turns

# The starter model named, so that its "no model in models/" notice does not count as a line on stderr.
DETERMINISTIC = ("--temperature", "0", "--seed", "1", "--model", "smollm2")
TOPICS = [
    "the moon",
    "rivers",
    "bread",
    "the color blue",
    "owls",
    "music",
    "volcanoes",
    "tea",
    "bicycles",
    "the ocean",
    "snow",
    "honey bees",
]


def questions(n: int) -> list[str]:
    return [f"Tell me one short fact about {TOPICS[i % len(TOPICS)]}, number {i + 1}." for i in range(n)]


def turns_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def system_prompt_tokens(context: int = 512) -> int:
    """What the default system prompt (and the template around it) takes, by the model's tokenizer."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from talkgpt4all.config import DEFAULT_SYSTEM_PROMPT
    from talkgpt4all.models import starter_gguf

    vocab = Llama(model_path=str(starter_gguf()), vocab_only=True, verbose=False)
    template = Jinja2ChatFormatter(vocab.metadata["tokenizer.chat_template"], "", "")
    prompt = template(messages=[{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]).prompt
    return len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))


@pytest.mark.slow
@pytest.mark.parametrize("llm", ["llama-cpp", "binary"])
def test_a_long_conversation_stays_in_budget_and_reuses_the_cache(tmp_path: Path, llm: str):
    if llm == "binary" and not (ROOT / "bin" / "llama-server").is_file():
        pytest.fail("no bin/llama-server: build it with `python chat.py --build-binary` (.ci/run does)")
    context, max_tokens, n = 512, 48, 60 if llm == "llama-cpp" else 40
    log = tmp_path / "t.jsonl"
    run = run_chat(
        "--llm",
        llm,
        "--text",
        "--no-play",
        "--transcript",
        str(log),
        "--context",
        str(context),
        "--max-tokens",
        str(max_tokens),
        *DETERMINISTIC,
        stdin="\n".join(questions(n)) + "\n",
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    turns = turns_in(log)
    assert len(turns) == n
    budget = context - max_tokens
    assert all(t["prompt_tokens"] <= budget for t in turns)
    sizes = [t["prompt_tokens"] for t in turns]
    # The history filled the context, and old turns were dropped from then on.
    full = next(i for i in range(1, n) if sizes[i] < sizes[i - 1])
    assert full < n - 20, sizes
    system = system_prompt_tokens()
    for t in turns[full:]:
        evaluated, history = t["prompt_evaluated"], t["prompt_tokens"] - system
        # Computing the history again would cost all of it; reusing the cache costs the newest reply's
        # tail and the question: a few dozen tokens.
        assert evaluated is not None and evaluated < history / 3, (t["turn"], evaluated, history, sizes)


def start(args: list[str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHAT), "--text", "--no-play", "--transcript", str(log), *DETERMINISTIC, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


STORY = ("--max-tokens", "2000", "--system-prompt", "You tell very long stories.")


def ask_story_after_two_turns(proc: subprocess.Popen[str], log: Path) -> None:
    """Two short turns complete, then a long story is asked for and has begun."""
    assert proc.stdin and proc.stdout
    proc.stdin.write("What is the capital of France?\nAnd of Italy?\n")
    proc.stdin.flush()
    wait_for_turns(log, 2)
    proc.stdin.write("Tell me a very long story about a dragon.\n")
    proc.stdin.flush()
    for line in proc.stdout:  # the story is being told
        if line.startswith("You: Tell me a very long story"):
            break
    time.sleep(1.0)


def test_resume_after_a_crash_mid_reply_keeps_every_completed_turn(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    proc = start(list(STORY), log)
    try:
        ask_story_after_two_turns(proc, log)
        proc.kill()  # SIGKILL mid-reply: no chance to write anything more
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = turns_in(log)
    assert [t["turn"] for t in before] == [1, 2]  # both completed turns are on disk
    # A power cut can tear the line being written; simulate one.
    with log.open("a") as f:
        f.write('{"turn": 3, "user": "Tell me a very long story about a dra')

    run = run_chat(
        "--text",
        "--no-play",
        "--resume",
        str(log),
        *DETERMINISTIC,
        stdin="What was the first thing I asked you?\n",
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr_lines == [f"note: skipped line 3 of {log}: not a whole turn (cut short by a crash?)"]
    lines = log.read_text().splitlines()
    assert (
        lines[2].startswith('{"turn": 3, "user": "Tell me a very long story about a dra')
        and lines[2][-1] != "}"
    )
    resumed = json.loads(lines[3])  # on a line of its own, after the torn one
    assert resumed["turn"] == 3 and resumed["user"] == "What was the first thing I asked you?"
    # The history was rebuilt: the prompt holds both earlier turns, not just the system prompt.
    assert resumed["prompt_tokens"] > before[1]["prompt_tokens"] + 10
    assert [t["turn"] for t in turns_in_skipping_torn(log)] == [1, 2, 3]


def turns_in_skipping_torn(path: Path) -> list[dict]:
    from talkgpt4all.transcript import read_transcript

    return [{"turn": t.turn, "user": t.user} for t in read_transcript(path)]


def test_resume_trims_a_history_longer_than_the_context(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    with log.open("w") as f:
        for i in range(300):
            record = {"turn": i + 1, "user": f"Question {i} about {TOPICS[i % 12]}?", "reply": f"Answer {i}."}
            f.write(json.dumps(record) + "\n")
    run = run_chat(
        "--text", "--no-play", "--resume", str(log), "--context", "512", "--max-tokens", "48",
        *DETERMINISTIC, stdin="Hello again.\n",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    last = turns_in(log)[-1]
    assert last["turn"] == 301 and last["prompt_tokens"] <= 512 - 48


def test_a_closed_terminal_sighup_ends_quietly_with_the_transcript_intact(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    proc = start(list(STORY), log)
    try:
        ask_story_after_two_turns(proc, log)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP
    assert err.strip() == "", err  # nothing, and no "Exception in thread"
    turns = turns_in(log)
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert turns[2]["interrupted"] is True and turns[2]["reply"]  # the story as far as it went


def test_ctrl_c_in_the_terminal_reaches_only_us_not_the_speech_command(tmp_path: Path):
    """A terminal's Ctrl-C signals the whole foreground process group. espeak runs in its own session,
    so it is not killed by it (which showed as "espeak-ng exited with -2"); we stop the reply."""
    real = subprocess.run(["which", "espeak-ng"], capture_output=True, text=True).stdout.strip()
    if not real:
        pytest.fail("needs espeak-ng (.ci/run installs it)")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "speaking"
    # An espeak-ng that takes its time, so Ctrl-C lands while it speaks.
    (fake_bin / "espeak-ng").write_text(
        f'#!/bin/sh\ncut -d" " -f6 /proc/$$/stat > "{marker}"\nsleep 3\nexec "{real}" "$@"\n',
        encoding="utf-8",
    )
    (fake_bin / "espeak-ng").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        # --tts espeak: the command under test (Linux's default, auto, speaks English with piper).
        [
            sys.executable,
            str(CHAT),
            "--text",
            "--tts",
            "espeak",
            "--no-play",
            "--save-audio",
            str(tmp_path),
            *STORY,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert proc.stdin
        deadline = time.monotonic() + 120
        while not marker.exists():  # the warm-up's "Hi"
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        marker.unlink()
        proc.stdin.write("Tell me a very long story about a dragon.\n")
        proc.stdin.flush()
        while not marker.exists() or not marker.read_text().strip():  # the reply is being spoken
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert int(marker.read_text()) != proc.pid, "espeak runs in our session, where Ctrl-C reaches it"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as the terminal sends it: to the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "exited with" not in err and "Traceback" not in err, err
