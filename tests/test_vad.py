"""Silero VAD on real audio, counted in audio time: when turns start and end, and when they don't."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import Ears, speak_to_file, wer
from fakes import feed_all
from talkgpt4all.audio import SAMPLE_RATE, load_audio
from talkgpt4all.audio.vad import Segmenter, VadOptions

QUESTION = "What is the capital of France?"


def speech(tmp_path: Path, text: str = QUESTION) -> np.ndarray:
    samples = load_audio(speak_to_file(text, tmp_path / "speech.wav"))
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[: loud[-1] + 1]  # ends where the voice ends


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


@pytest.mark.parametrize("silence_ms", [300, 500, 800])
def test_a_pause_ends_the_turn_within_silence_ms_plus_200ms(tmp_path, ears: Ears, silence_ms):
    voice = speech(tmp_path)
    lead = silence(0.7)
    audio = np.concatenate([lead, voice, silence(1.0)])
    starts: list[int] = []
    seg = Segmenter(VadOptions(silence_ms=silence_ms), on_start=lambda: starts.append(seg.samples_seen))
    [(ended_at, utterance)] = feed_all(seg, audio)

    speech_end = len(lead) + len(voice)
    waited_ms = (ended_at - speech_end) / SAMPLE_RATE * 1000
    assert silence_ms <= waited_ms + 32 and waited_ms <= silence_ms + 200, waited_ms
    assert len(starts) == 1 and starts[0] > len(lead)
    # The pre-roll keeps the first syllable: the whole question is in the utterance.
    assert wer(QUESTION, ears.hear(utterance)) <= 0.2


def test_silence_alone_never_starts_a_turn():
    seg = Segmenter(on_start=lambda: pytest.fail("a turn started in silence"))
    assert feed_all(seg, silence(5)) == []


def test_noise_and_clicks_never_start_a_turn():
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(SAMPLE_RATE * 4) * 0.02).astype(np.float32)  # fan noise
    clicks = silence(4)
    for at in range(2000, len(clicks), SAMPLE_RATE // 2):  # a key click every half second
        clicks[at : at + 40] = rng.uniform(-0.8, 0.8, 40)
    hum = (0.1 * np.sin(2 * np.pi * 50 * np.arange(SAMPLE_RATE * 3) / SAMPLE_RATE)).astype(np.float32)
    seg = Segmenter(on_start=lambda: pytest.fail("noise started a turn"))
    assert feed_all(seg, np.concatenate([hiss, clicks, hum])) == []


def test_two_questions_make_two_turns(tmp_path):
    first = speech(tmp_path, "Hello there.")
    second = speech(tmp_path, "How are you today?")
    audio = np.concatenate([silence(0.5), first, silence(1.0), second, silence(1.0)])
    assert len(feed_all(Segmenter(), audio)) == 2


def test_a_short_breath_inside_a_sentence_does_not_end_the_turn(tmp_path):
    first = speech(tmp_path, "The capital of France")
    second = speech(tmp_path, "is Paris.")
    audio = np.concatenate([silence(0.5), first, silence(0.25), second, silence(1.0)])
    assert len(feed_all(Segmenter(VadOptions(silence_ms=500)), audio)) == 1


def test_a_barge_in_the_canceller_finds_late_under_the_echo_keeps_its_first_words():
    """Over a reply, a voice counts only once the echo canceller finds more than echo in it; on the
    virtual devices that came 1.25 s into espeak-ng's question over piper's reply, and the question was
    heard as "A capital on France." The run of speech before it is the user's, and is kept."""
    from talkgpt4all.audio.vad import CHUNK

    seg = Segmenter(VadOptions(silence_ms=300), vad=lambda c: 0.95 if float(np.abs(c).max()) > 0.1 else 0.0)
    first_words = np.full(CHUNK, 0.5, np.float32)  # the question's first piece, told apart by its level
    voice = np.concatenate([first_words, np.full(CHUNK * 55, 0.3, np.float32)])  # 1.8 s
    found_at = CHUNK * 40  # 1.28 s in
    pieces = [(np.zeros(CHUNK, np.float32), False) for _ in range(30)]  # the reply, cancelled to silence
    pieces += [(voice[i : i + CHUNK], i >= found_at) for i in range(0, len(voice), CHUNK)]
    pieces += [(np.zeros(CHUNK, np.float32), True) for _ in range(20)]
    utterances = [
        u for chunk, over in pieces if (u := seg.feed(chunk, echo=True, over_echo=over)) is not None
    ]
    [utterance] = utterances
    start = int(np.flatnonzero(np.abs(utterance) > 0.1)[0])
    assert utterance[start] == pytest.approx(0.5), "the first words were cut"
