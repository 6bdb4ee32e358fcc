"""Bad input: exit code 1 and exactly one line on stderr that says what to do, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_chat, speak_to_file


def one_line_error(*args: str, env: dict[str, str] | None = None, stdin: str = "hello\n") -> str:
    run = run_chat(*args, stdin=stdin, env=env, timeout=120)
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert len(run.stderr_lines) == 1, run.stderr
    line = run.stderr_lines[0]
    assert line.startswith("error: ") and "Traceback" not in run.stderr
    return line


def test_missing_model_path(tmp_path):
    line = one_line_error("--text", "--no-play", "--model", str(tmp_path / "nowhere.gguf"))
    assert "model not found" in line and "nowhere.gguf" in line and "models/" in line


@pytest.mark.parametrize(
    "content", [b"\x00" * 4096, b"GGUF" + os.urandom(4096)], ids=["no-magic", "truncated"]
)
def test_corrupt_gguf(tmp_path, content):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(content)
    line = one_line_error("--text", "--no-play", "--model", str(bad))
    assert "broken.gguf" in line and "download it again" in line


def test_missing_tts_command_names_the_install_command(tmp_path):
    # A PATH without espeak-ng or espeak, as on a fresh Linux machine.
    line = one_line_error("--text", "--save-audio", str(tmp_path), env={"PATH": str(tmp_path)})
    assert "sudo apt-get install espeak-ng" in line


def test_no_input_device_without_a_sound_server():
    # No sound server to reach, and this machine has no sound card: there is no microphone.
    line = one_line_error("--no-play", env={"PULSE_SERVER": "unix:/nonexistent"})
    assert "microphone" in line and "--input FILE" in line


def test_input_device_that_does_not_exist():
    line = one_line_error("--no-play", "--input-device", "no-such-microphone-xyz")
    assert "no-such-microphone-xyz" in line or "microphone" in line


@pytest.mark.parametrize("kind", ["missing", "empty", "not-audio", "unreadable"])
def test_bad_input_file(tmp_path, kind):
    path = tmp_path / "question.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-audio":
        path.write_text("this is not a sound file\n" * 20)
    elif kind == "unreadable":
        speak_to_file("hello", path)
        path.chmod(0)
        if os.geteuid() == 0:
            # root reads anything: make it a directory instead, which no one can read as audio
            path.chmod(0o644)
            path.unlink()
            path.mkdir()
    line = one_line_error("--input", str(path), "--no-play")
    assert "question.wav" in line


@pytest.mark.parametrize("flag", ["--stt", "--llm", "--tts"])
def test_unknown_engine_lists_the_valid_names(flag):
    line = one_line_error("--text", "--no-play", flag, "no-such-engine")
    assert "no-such-engine" in line and "choose one of" in line


def test_platform_for_another_os():
    line = one_line_error("--text", "--no-play", "--platform", "windows")
    assert "--platform linux" in line


def test_bad_input_fails_before_any_model_loads(tmp_path):
    # The second file is bad: nothing is transcribed or generated for the first.
    good = speak_to_file("What is the capital of France?", tmp_path / "good.wav")
    run = run_chat("--input", str(good), "--input", str(tmp_path / "missing.wav"), "--no-play")
    assert run.returncode == 1 and run.stdout == ""


def test_usage_errors_exit_2():
    run = run_chat("--text", "--input", "x.wav")
    assert run.returncode == 2
    run = run_chat("--temperature", "hot")
    assert run.returncode == 2


def test_debug_shows_the_traceback(tmp_path):
    run = run_chat("--text", "--no-play", "--model", str(tmp_path / "nowhere.gguf"), "--debug", stdin="hi\n")
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_ctrl_c_exits_130(tmp_path):
    # A reply that goes on for a long time, interrupted as a user would with Ctrl-C.
    proc = subprocess.Popen(
        [
            sys.executable,
            "chat.py",
            "--text",
            "--no-play",
            "--max-tokens",
            "4000",
            "--system-prompt",
            "Write very long stories.",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("Tell me a very long story about a dragon.\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("You:")
    proc.send_signal(2)  # SIGINT, what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
