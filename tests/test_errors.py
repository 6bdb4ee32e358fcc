"""Bad input: exit code 1 and exactly one line on stderr that says what to do, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_chat, speak_to_file

# The starter model by name: without it, its "no model in models/" notice is a line on stderr.
STARTER = ("--model", "smollm2")


def one_line_error(
    *args: str, env: dict[str, str] | None = None, stdin: str = "hello\n", code: int = 1
) -> str:
    run = run_chat(*args, stdin=stdin, env=env, timeout=120)
    assert run.returncode == code, (run.returncode, run.stderr)
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
    args = ("--text", "--tts", "espeak", "--save-audio", str(tmp_path))
    line = one_line_error(*args, env={"PATH": str(tmp_path)})
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
    line = one_line_error("--text", "--no-play", flag, "no-such-engine", code=2)
    assert "no-such-engine" in line and "choose one of" in line


def test_platform_for_another_os():
    line = one_line_error("--text", "--no-play", "--platform", "windows")
    assert "--platform linux" in line


def test_bad_input_fails_before_any_model_loads(tmp_path):
    # The second file is bad: nothing is transcribed or generated for the first.
    good = speak_to_file("What is the capital of France?", tmp_path / "good.wav")
    run = run_chat("--input", str(good), "--input", str(tmp_path / "missing.wav"), "--no-play")
    assert run.returncode == 1 and run.stdout == ""


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--text", "--input", "x.wav"], "--text and --input"),
        (["--temperature", "hot"], "--temperature"),
        (["--temperature", "-3"], "--temperature"),
        (["--context", "10"], "--context"),
        (["--max-tokens", "5000"], "--max-tokens 5000"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--threads", "0"], "--threads"),
        (["--silence-ms", "5"], "--silence-ms"),
        (["--rate", "-1"], "--rate"),
        (["--seed", "-7"], "--seed"),
        (["--llm", "openai", "--llm-url", "notaurl"], "--llm-url"),
        (["--llm", "openai"], "--llm-url"),
        (["--llm-url", "http://127.0.0.1:8080/v1"], "--llm openai"),
        (["--barge-in"], "--vad"),
        (["--no-speculate"], "--text or --input"),
        (["--stt", "openai"], "--stt-url"),
        (["--tts-url", "http://127.0.0.1:8880/v1"], "--tts openai"),
        (["--tts", "openai", "--tts-url", "localhost"], "--tts-url"),
        (["--silence-ms", "300"], "--vad"),
        (["--turn-model", "none"], "--vad"),
        (["--context", "10000000"], "--context"),
        (["--language", "xx"], "--language"),
        (["--language", "english"], "--language en"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], named: str):
    line = one_line_error("--text", "--no-play", *args, code=2)
    assert named in line and "--help" in line, line


def test_a_system_prompt_longer_than_the_context_is_a_usage_error():
    line = one_line_error(
        "--text", "--no-play", "--context", "256", "--max-tokens", "32",
        "--system-prompt", "Be brief. " * 200, *STARTER, code=2,
    )  # fmt: skip
    assert "system prompt takes" in line and "--context 256" in line


def test_a_context_of_ten_to_the_twenty_in_the_config_file_is_one_line_not_a_crash(tmp_path):
    """(Before: the process was killed by the kernel for the memory it asked for, exit 137.)"""
    config = tmp_path / "config.toml"
    config.write_text("context = 100000000000000000000\n")
    line = one_line_error("--text", "--no-play", "--config", str(config), code=2)
    assert "context" in line and "at most" in line


def test_a_context_longer_than_the_model_knows_names_the_context_not_the_file():
    """SmolLM2 was trained on 8192 tokens. (Before, a context it could not make was blamed on the
    model file: "corrupt, incomplete, or an architecture this llama.cpp does not know".)"""
    line = one_line_error("--text", "--no-play", "--context", "500000", *STARTER, code=2)
    assert "--context 500000" in line and "8192" in line and "download" not in line


def test_an_espeak_voice_that_does_not_exist_is_one_line_not_another_voice(tmp_path):
    """(Before, espeak-ng spoke in its default voice and the run went on: an explicit choice replaced.)"""
    line = one_line_error(
        "--text", "--tts", "espeak", "--voice", "no-such-voice", "--save-audio", str(tmp_path), *STARTER
    )
    assert "no-such-voice" in line and "--list-voices" in line
    assert not list(tmp_path.glob("*.wav"))


@pytest.mark.parametrize("content", [os.urandom(600), b"", b"hello\nworld\n"], ids=["bytes", "empty", "text"])
def test_resume_of_a_file_with_no_turn_in_it_is_refused_and_left_alone(tmp_path, content):
    """(Before, it resumed an empty conversation and appended new turns to the file.)"""
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    line = one_line_error("--text", "--no-play", "--resume", str(path), *STARTER)
    assert "notes.txt" in line and "--transcript" in line
    assert path.read_bytes() == content


def test_invalid_utf8_on_stdin_is_replaced_with_a_warning_and_answered(tmp_path):
    log = tmp_path / "t.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "chat.py",
            "--text",
            "--no-play",
            "--transcript",
            str(log),
            *STARTER,
            "--max-tokens",
            "16",
        ],
        input=b"caf\xe9 au lait?\n",
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert (
        err.strip() == "note: line 1 of the input is not valid UTF-8: the bytes that are not are shown as �"
    )
    assert json.loads(log.read_text())["user"] == "caf� au lait?"


def test_a_failed_turn_is_recorded_and_the_run_goes_on_exit_1(tmp_path):
    log = tmp_path / "t.jsonl"
    asked = ["What is the capital of France?", "And of Italy?", "And of Spain?"]
    run = run_chat(
        "--text", "--no-play", "--transcript", str(log), "--context", "512", "--max-tokens", "32",
        "--temperature", "0", *STARTER,
        stdin="\n".join([*asked, "word " * 600, "And of Portugal?"]) + "\n",
    )  # fmt: skip
    assert run.returncode == 1
    assert len(run.stderr_lines) == 1 and "too long" in run.stderr_lines[0] and "Traceback" not in run.stderr
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert [t["turn"] for t in turns] == [1, 2, 3, 4, 5]
    failed, last = turns[3], turns[4]
    assert "too long" in failed["error"] and failed["reply"] == ""
    assert all(t["reply"] for t in turns[:3]) and last["reply"]
    # The failed turn took nothing from the history: the last prompt holds all three earlier turns.
    assert last["prompt_tokens"] > turns[2]["prompt_tokens"] + 10


def test_an_unexpected_exception_is_one_line_and_a_hint(tmp_path):
    script = (
        "import sys, talkgpt4all.app as app, talkgpt4all.cli as cli\n"
        "def broken(*a, **k):\n    return 1 / 0\n"
        "app.run = broken\n"
        "sys.exit(cli.main(['--text', '--no-play']))\n"
    )
    for debug in (False, True):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                script.replace("'--no-play']", "'--no-play', '--debug']") if debug else script,
            ],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=60,
        )
        assert done.returncode == 1
        if debug:
            assert "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr
        else:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert lines == [
                "error: unexpected ZeroDivisionError: division by zero "
                "(run again with --debug to see where, and please report it)"
            ]


def test_an_unwritable_transcript_is_one_line(tmp_path):
    line = one_line_error("--text", "--no-play", "--transcript", str(tmp_path))  # a folder, not a file
    assert "--transcript" in line


def test_an_unwritable_save_audio_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_line_error("--text", "--save-audio", str(tmp_path / "file" / "replies"))
    assert "--save-audio" in line


def test_resume_from_a_missing_transcript_is_one_line(tmp_path):
    line = one_line_error("--text", "--no-play", "--resume", str(tmp_path / "none.jsonl"))
    assert "no transcript at" in line and "--transcript" in line


def test_stdout_closed_by_its_reader_ends_quietly():
    # `chat.py --text | head -c 20`: the reader quits early; no traceback, no "Exception ignored".
    done = subprocess.run(
        f"printf 'Hello\\nHow are you?\\n' | {sys.executable} chat.py --text --no-play | head -c 20",
        shell=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert done.stdout.startswith("You: Hello")
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr, done.stderr


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


def test_a_llama_cpp_build_that_crashes_on_this_cpu_is_one_line_saying_how_to_rebuild(tmp_path):
    """pip builds llama-cpp-python natively, and on the Intel Xeons this project is tested on, ggml's AMX
    kernels die at the first prompt (a segmentation fault, no word). The build is tried once per CPU in a
    child process: here the child crashes as they do (SIGILL), and the build reports AMX. Nothing else
    on this machine crashes: the crash is a stand-in, the check and the line are real."""
    tried = str(tmp_path / "tried")
    probe = f"import os, signal\nopen({tried!r}, 'a').write('x')\nos.kill(os.getpid(), signal.SIGILL)\n"
    script = (
        "import sys, llama_cpp, talkgpt4all.cli as cli, talkgpt4all.llm.llama_cpp as engine\n"
        f"engine.PROBE = {probe!r}\n"
        "info = llama_cpp.llama_print_system_info\n"
        "llama_cpp.llama_print_system_info = lambda: info() + b'AMX_INT8 = 1 | '\n"
        "sys.exit(cli.main(['--text', '--no-play', '--model', 'smollm2']))\n"
    )
    env = {**os.environ, "TALKGPT4ALL_CACHE": str(tmp_path)}
    for _ in range(2):  # the second time, the verdict comes from the cache
        done = subprocess.run(
            [sys.executable, "-c", script],
            input="hello\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert "AMX kernels, which crash on this CPU (SIGILL)" in lines[0] and "-mno-amx-tile" in lines[0]
        assert "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python==" in lines[0]
    assert (tmp_path / "tried").read_text() == "x"  # tried once
    assert list(json.loads((tmp_path / "llama-cpp-builds.json").read_text()).values()) == ["SIGILL"]
