"""End to end with the real engines: espeak-ng speaks, faster-whisper hears, SmolLM2 answers.

The starter models come from PyPI packages (requirements.txt), so nothing is downloaded.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from conftest import Ears, reply_line, run_chat, speak_to_file, wer
from talkgpt4all.models import starter_gguf

pytestmark = pytest.mark.e2e

QUESTION = "What is the capital of France?"
DETERMINISTIC = ("--temperature", "0", "--seed", "1")


def test_a_spoken_question_is_heard_answered_and_spoken(tmp_path: Path, ears: Ears):
    question = speak_to_file(QUESTION, tmp_path / "q.wav")
    out, log = tmp_path / "replies", tmp_path / "t.jsonl"
    run = run_chat(
        "--input",
        str(question),
        "--save-audio",
        str(out),
        "--transcript",
        str(log),
        "--no-play",
        *DETERMINISTIC,
    )
    assert run.returncode == 0, run.stderr

    [turn] = [json.loads(line) for line in log.read_text().splitlines()]
    assert wer(QUESTION, turn["user"]) <= 0.2, turn["user"]
    assert turn["language"] == "en"
    printed = reply_line(run.stdout)
    assert printed == turn["reply"] and "paris" in printed.lower()
    # What the user hears is what they read.
    heard = ears.hear(out / "reply-001.wav")
    assert wer(printed, heard) <= 0.35, (printed, heard)
    t = turn["timings"]
    assert 0 < t["stt"] <= t["llm_first_token"] <= t["first_audio"] <= t["total"]
    assert turn["prompt_tokens"] > 10


def test_several_input_files_in_any_format_are_one_conversation(tmp_path: Path, ears: Ears):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("needs ffmpeg (sudo apt-get install ffmpeg); .ci/run installs it")
    first = speak_to_file(QUESTION, tmp_path / "first.wav")
    second = speak_to_file("Tell me about Paris.", tmp_path / "second.wav")
    flac = tmp_path / "first.flac"  # 44.1 kHz stereo FLAC
    mp3 = tmp_path / "second.mp3"  # 24 kHz MP3
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-i", str(first), "-ar", "44100", "-ac", "2", str(flac)], check=True
    )
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(second), "-ar", "24000", str(mp3)], check=True)
    out, log = tmp_path / "replies", tmp_path / "t.jsonl"
    run = run_chat(
        "--input",
        str(flac),
        "--input",
        str(mp3),
        "--save-audio",
        str(out),
        "--transcript",
        str(log),
        "--no-play",
        "--whisper-model",
        "tiny.en",
        *DETERMINISTIC,
    )
    assert run.returncode == 0, run.stderr
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert [t["turn"] for t in turns] == [1, 2]
    assert wer(QUESTION, turns[0]["user"]) <= 0.2
    assert wer("Tell me about Paris.", turns[1]["user"]) <= 0.25
    assert sorted(p.name for p in out.iterdir()) == ["reply-001.wav", "reply-002.wav"]
    assert turns[1]["prompt_tokens"] > turns[0]["prompt_tokens"]
    heard = ears.hear(out / "reply-002.wav")
    assert wer(turns[1]["reply"], heard) <= 0.35, (turns[1]["reply"], heard)


def test_two_typed_turns_send_the_history(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    run = run_chat(
        "--text",
        "--no-play",
        "--transcript",
        str(log),
        *DETERMINISTIC,
        stdin=f"{QUESTION}\nAnd what is its most famous tower?\n",
    )
    assert run.returncode == 0, run.stderr
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["language"] == "en" and first["timings"]["stt"] is None  # from its script
    assert first["timings"]["first_audio"] is None  # --no-play and no --save-audio: nothing was voiced

    from llama_cpp import Llama

    vocab = Llama(model_path=str(starter_gguf()), vocab_only=True, verbose=False)
    reply_tokens = len(vocab.tokenize(first["reply"].encode(), add_bos=False))
    # Turn 2's prompt holds turn 1's prompt, its reply, and the new question.
    assert second["prompt_tokens"] > first["prompt_tokens"] + reply_tokens
    assert run.stdout.count("You: ") == 2 and run.stdout.count("AI: ") == 2


def test_text_mode_speaks_each_reply_to_a_file(tmp_path: Path, ears: Ears):
    out = tmp_path / "replies"
    run = run_chat("--text", "--no-play", "--save-audio", str(out), *DETERMINISTIC, stdin=f"{QUESTION}\n")
    assert run.returncode == 0, run.stderr
    heard = ears.hear(out / "reply-001.wav")
    assert wer(reply_line(run.stdout), heard) <= 0.35


def test_reply_text_is_spoken_verbatim_never_read_as_options(
    tmp_path: Path, ears: Ears, monkeypatch: pytest.MonkeyPatch
):
    from talkgpt4all.tts.commands import Espeak

    monkeypatch.chdir(tmp_path)  # where a shell, had one run the text, would have made the file
    tricky = '-v xx --help "quoted" $(touch pwned) `touch pwned`; next line\nsecond'
    audio = Espeak().synthesize(tricky)
    assert not (tmp_path / "pwned").exists()
    assert audio.seconds > 2  # the whole text was said, not a help page or nothing
    heard = ears.hear(_at_16k(audio.samples, audio.sample_rate)).lower()
    # "--help" and "$(touch ...)" were said aloud, and so was the last line.
    assert all(word in heard for word in ("help", "dollar", "touch", "second")), heard


def _at_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    from talkgpt4all.audio import SAMPLE_RATE, resample

    return resample(samples, rate, SAMPLE_RATE)


def test_openai_whisper_engine_loads_a_checkpoint_and_transcribes(tmp_path: Path):
    torch = pytest.importorskip("torch", reason="install the openai-whisper extra (.ci/run does)")
    whisper = pytest.importorskip("whisper")
    from whisper.model import ModelDimensions, Whisper

    from talkgpt4all.audio import load_audio
    from talkgpt4all.settings import SpeechToText
    from talkgpt4all.stt import Transcript, make_transcriber

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=1,
        n_audio_layer=1,
        n_vocab=51865,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=1,
        n_text_layer=1,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():  # some of Whisper's parameters start as torch.empty: give them all values
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    checkpoint = tmp_path / "tiny-random.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, checkpoint)

    transcriber = make_transcriber(SpeechToText(engine="openai-whisper", model=str(checkpoint)))
    assert isinstance(transcriber.model, whisper.model.Whisper)  # type: ignore[attr-defined]
    audio = load_audio(speak_to_file(QUESTION, tmp_path / "q.wav"))
    result = transcriber.transcribe(audio, language="en")
    # Random weights say random things; the loading and decoding path is what is proven here.
    assert isinstance(result, Transcript) and isinstance(result.text, str) and result.language == "en"
    # Detection among the user's languages only: two that random weights did not pick among all.
    anything = make_transcriber(SpeechToText(engine="openai-whisper", model=str(checkpoint), languages="any"))
    guessed = anything.transcribe(audio).language
    mine = tuple(code for code in ("fr", "ja", "de") if code != guessed)[:2]
    limited = make_transcriber(
        SpeechToText(engine="openai-whisper", model=str(checkpoint), languages=",".join(mine))
    )
    assert limited.transcribe(audio).language in mine

    # And through the command line, as a user would choose it.
    run = run_chat(
        "--stt",
        "openai-whisper",
        "--whisper-model",
        str(checkpoint),
        "--input",
        str(tmp_path / "q.wav"),
        "--no-play",
        "--max-tokens",
        "8",
    )
    assert run.returncode == 0, run.stderr


def test_openai_whisper_missing_checkpoint_is_a_clear_error(tmp_path: Path):
    pytest.importorskip("whisper", reason="install the openai-whisper extra (.ci/run does)")
    speak_to_file(QUESTION, tmp_path / "q.wav")
    run = run_chat(
        "--stt",
        "openai-whisper",
        "--whisper-model",
        str(tmp_path / "none.pt"),
        "--input",
        str(tmp_path / "q.wav"),
        "--no-play",
    )
    assert run.returncode == 1 and len(run.stderr_lines) == 1 and "none.pt" in run.stderr


def test_a_silent_input_file_gets_didnt_catch_that_and_no_reply(tmp_path: Path):
    import soundfile as sf

    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 2, np.float32), 16000)
    log = tmp_path / "t.jsonl"
    run = run_chat("--input", str(silence), "--no-play", "--transcript", str(log))
    assert run.returncode == 0, run.stderr
    assert "didn't catch that" in run.stdout and "AI: " not in run.stdout
    assert not log.exists() or log.read_text() == ""


def test_a_long_conversation_is_trimmed_to_the_context(tmp_path: Path):
    log = tmp_path / "t.jsonl"
    questions = [f"Tell me one fact about the number {n}." for n in range(8)]
    run = run_chat(
        "--text",
        "--no-play",
        "--transcript",
        str(log),
        "--context",
        "384",
        "--max-tokens",
        "64",
        *DETERMINISTIC,
        stdin="\n".join(questions) + "\n",
    )
    assert run.returncode == 0, run.stderr
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(turns) == 8
    assert all(t["prompt_tokens"] <= 384 - 64 for t in turns)
    # Without trimming the prompt would only grow; trimming made it drop at least once.
    sizes = [t["prompt_tokens"] for t in turns]
    assert any(b < a for a, b in itertools.pairwise(sizes)), sizes
