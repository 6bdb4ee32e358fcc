"""Speech to text on real recordings: one encoder pass over a window fitted to the speech, in English
and Mandarin, with the language detected from that same pass."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from clips import real_clips
from conftest import wer
from talkgpt4all.audio import SAMPLE_RATE, load_audio
from talkgpt4all.stt.faster_whisper import FITTED, FasterWhisperTranscriber


@pytest.fixture(scope="module")
def base() -> Iterator[FasterWhisperTranscriber]:
    yield FasterWhisperTranscriber(None)  # the default: Whisper base, multilingual


class Spy:
    """Counts the encoder passes and the frames each one saw."""

    def __init__(self, stt: FasterWhisperTranscriber, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames: list[int] = []
        self.detections = 0
        encode, model = stt.model.encode, stt.model.model

        def counting_encode(features: np.ndarray):  # type: ignore[no-untyped-def]
            self.frames.append(int(features.shape[-1]))
            return encode(features)

        class Detecting:
            def __getattr__(self, name: str) -> object:
                return getattr(model, name)

            def detect_language(inner, *args, **kwargs):  # type: ignore[no-untyped-def]
                self.detections += 1
                return model.detect_language(*args, **kwargs)

        monkeypatch.setattr(stt.model, "encode", counting_encode)
        monkeypatch.setattr(stt.model, "model", Detecting())


def mandarin_characters(text: str) -> list[str]:
    import opencc

    return [ch for ch in opencc.OpenCC("t2s").convert(text) if ch.isalnum()]


def cer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(
        jiwer.wer(" ".join(mandarin_characters(reference)), " ".join(mandarin_characters(hypothesis)))
    )


def test_real_english_is_heard_in_one_encoder_pass_over_a_fitted_window(base, monkeypatch):
    [(_, path, text, _)] = [c for c in real_clips("en") if c[0] == "f5-basic_ref_en.wav"]
    audio = load_audio(path)
    spy = Spy(base, monkeypatch)
    heard = base.transcribe(audio)  # language detected
    assert heard.language == "en" and wer(text, heard.text) <= 0.1, heard
    # One pass served detection and decoding, over at least 10 s, not 30 s.
    assert spy.frames == [FITTED.frames(len(audio) // 160)] == [1000] and spy.detections == 1


def test_real_mandarin_is_detected_and_heard(base, monkeypatch):
    [(_, path, text, _)] = [c for c in real_clips("zh") if c[0] == "f5-basic_ref_zh.wav"]
    spy = Spy(base, monkeypatch)
    heard = base.transcribe(load_audio(path))
    assert heard.language == "zh"
    # Whisper base hears this speaker's "敬仰" and "太乙" as near-homophones: 3 characters of 15.
    assert cer(text, heard.text) <= 0.25, heard
    assert len(spy.frames) == 1 and spy.detections == 1


def test_a_given_language_skips_detection(base, monkeypatch):
    [(_, path, text, _)] = [c for c in real_clips("en") if c[0] == "f5-basic_ref_en.wav"]
    spy = Spy(base, monkeypatch)
    heard = base.transcribe(load_audio(path), "en")
    assert heard.language == "en" and wer(text, heard.text) <= 0.1
    assert spy.detections == 0 and len(spy.frames) == 1


def test_a_longer_utterance_gets_a_longer_window(base, monkeypatch):
    english = [load_audio(path) for _, path, _, _ in real_clips("en")]
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([piece for clip in english for piece in (clip, pause)])  # about 15 s
    spy = Spy(base, monkeypatch)
    heard = base.transcribe(audio, "en")
    assert spy.frames == [FITTED.frames(len(audio) // 160)] and 1000 < spy.frames[0] < 3000
    assert "quick brown fox" in heard.text.lower() and "mother nature" in heard.text.lower()


def test_an_utterance_longer_than_one_window_goes_through_the_long_form_path(base, monkeypatch):
    english = [load_audio(path) for _, path, _, _ in real_clips("en")]
    pause = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([piece for _ in range(3) for clip in english for piece in (clip, pause)])
    assert len(audio) / SAMPLE_RATE > 30
    spy = Spy(base, monkeypatch)
    heard = base.transcribe(audio, "en")
    assert len(spy.frames) >= 2 and all(frames == 3000 for frames in spy.frames)  # 30 s windows
    # The end of the last window is heard too.
    assert heard.text.lower().count("mother nature") >= 2, heard.text


def test_a_turn_is_heard_only_in_the_user_s_languages(base, tmp_path):
    """espeak-ng's British voice asking "How many days are there in a week?": Whisper base's likeliest
    language is Thai. Among the user's languages (--languages en,zh), it is English, and the words come
    out right."""
    import copy
    import subprocess

    question = "How many days are there in a week?"
    path = tmp_path / "q.wav"
    subprocess.run(["espeak-ng", "-v", "en-gb", "-w", str(path), question], check=True)
    audio = load_audio(path)
    assert base.transcribe(audio).language == "th"  # what any language gives: the case is real
    ours = copy.copy(base)  # the same loaded model, told the user's languages
    ours.languages = ("en", "zh")
    heard = ours.transcribe(audio)
    assert heard.language == "en" and wer(question, heard.text) <= 0.15, heard
    [(_, mandarin, _, _)] = [c for c in real_clips("zh") if c[0] == "f5-basic_ref_zh.wav"]
    assert ours.transcribe(load_audio(mandarin)).language == "zh"  # Chinese is still heard as Chinese
