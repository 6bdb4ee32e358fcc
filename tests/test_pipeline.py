"""The turn loop with fakes: what is shown, spoken, remembered and logged."""

import json
import time

import numpy as np
import pytest

from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, FakeTranscriber
from talkgpt4all.conversation import Conversation
from talkgpt4all.pipeline import DIDNT_CATCH, Session, TranscriptWriter

SPEECH = (np.sin(np.arange(16000) / 5) * 0.3).astype(np.float32)  # one second of loud tone


def session(chat=None, **kw):
    return Session(chat or FakeChat(), Conversation("be brief"), kw.pop("display", FakeDisplay()), **kw)


def test_a_spoken_turn_is_shown_answered_spoken_and_remembered():
    chat = FakeChat().enqueue("Paris is the capital. It is in France.", "About two million.")
    synth, sink, display = FakeSynth(), FakeSink(), FakeDisplay()
    s = session(
        chat,
        transcriber=FakeTranscriber("What is the capital of France?"),
        synthesizer=synth,
        sinks=[sink],
        display=display,
    )
    first = s.hear(SPEECH, time.perf_counter())
    s.reply("How many people live there?", time.perf_counter())

    assert display.lines == [
        "You: What is the capital of France?",
        "AI: Paris is the capital. It is in France.",
        "You: How many people live there?",
        "AI: About two million.",
    ]
    assert synth.spoken == ["Paris is the capital.", "It is in France.", "About two million."]
    assert sink.events[0] == "begin 1" and sink.events.count("end") == 2
    # The second call carried the whole history.
    assert [m["content"] for m in chat.calls[1]] == [
        "be brief",
        "What is the capital of France?",
        "Paris is the capital. It is in France.",
        "How many people live there?",
    ]
    assert first is not None and first.language == "en"
    t = first.timings
    assert t.stt is not None and t.stt <= t.llm_first_token <= t.first_audio <= t.total


def test_each_sentence_is_spoken_before_the_rest_is_generated():
    chat = FakeChat().enqueue("One. Two. Three.")
    pulled_at_speech: list[int] = []

    class Watching(FakeSynth):
        def synthesize(self, text, language=None):
            pulled_at_speech.append(chat.pulled)
            return super().synthesize(text, language)

    session(chat, synthesizer=Watching(), sinks=[FakeSink()]).reply("count", time.perf_counter())
    assert pulled_at_speech == [2, 3, 3]  # "One." is spoken once " Two." shows it ended, not at the end


@pytest.mark.parametrize("audio", [np.zeros(16000, np.float32), SPEECH[:3000]], ids=["silent", "too-short"])
def test_silence_or_a_tap_gets_didnt_catch_that_and_no_model_call(audio):
    chat, stt, display = FakeChat(), FakeTranscriber("ghost words"), FakeDisplay()
    s = session(chat, transcriber=stt, display=display)
    assert s.hear(audio, time.perf_counter()) is None
    assert display.lines == [DIDNT_CATCH] and chat.calls == [] and stt.calls == 0


def test_a_transcript_of_no_words_gets_didnt_catch_that():
    chat, display = FakeChat(), FakeDisplay()
    s = session(chat, transcriber=FakeTranscriber(" ... "), display=display)
    assert s.hear(SPEECH, time.perf_counter()) is None
    assert display.lines == [DIDNT_CATCH] and chat.calls == []


def test_ctrl_c_during_a_reply_stops_it_and_keeps_what_was_said():
    chat = FakeChat().enqueue("First part. Second part. Third part.", "Next.")
    sink = FakeSink(interrupt_on=2)
    display = FakeDisplay()
    s = session(chat, synthesizer=FakeSynth(), sinks=[sink], display=display, interruptible=True)
    result = s.reply("talk", time.perf_counter())
    assert result.interrupted
    assert "stop" in sink.events and sink.events[-1] == "end"
    assert display.lines[-1].endswith("[interrupted]")
    # Generation stopped, and history keeps what reached the speakers, marked as cut off.
    assert result.reply == "First part. Second part."
    s.reply("again", time.perf_counter())
    assert chat.calls[1][2]["content"] == "First part. Second part. …"


def test_ctrl_c_in_headless_mode_propagates():
    chat = FakeChat().enqueue("First part. Second part.")
    s = session(chat, synthesizer=FakeSynth(), sinks=[FakeSink(interrupt_on=1)])
    with pytest.raises(KeyboardInterrupt):
        s.reply("talk", time.perf_counter())


def test_transcript_lines_are_flushed_per_turn(tmp_path):
    path = tmp_path / "t.jsonl"
    chat = FakeChat().enqueue("Yes.", "No.")
    s = session(chat, transcript=TranscriptWriter(path))
    s.reply("one", time.perf_counter())
    first = json.loads(path.read_text())  # readable before the session ends
    s.reply("two", time.perf_counter())
    s.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert first["turn"] == 1 and [r["reply"] for r in lines] == ["Yes.", "No."]
    assert set(lines[0]) == {"turn", "user", "language", "reply", "prompt_tokens", "timings"}
    assert set(lines[0]["timings"]) == {"stt", "llm_first_token", "first_audio", "total"}
    assert lines[1]["prompt_tokens"] > lines[0]["prompt_tokens"]


def test_no_synthesizer_means_nothing_is_spoken_but_the_reply_shows():
    display = FakeDisplay()
    r = session(FakeChat().enqueue("Hi there."), display=display).reply("hi", time.perf_counter())
    assert r.timings.first_audio is None and display.lines[-1] == "AI: Hi there."


def test_a_speech_error_mid_reply_keeps_the_history_consistent():
    from talkgpt4all.errors import SpeechError

    class Failing(FakeSynth):
        def synthesize(self, text, language=None):
            raise SpeechError("espeak broke")

    chat = FakeChat().enqueue("Hello there. More.", "Fine.")
    display = FakeDisplay()
    s = session(chat, synthesizer=Failing(), sinks=[FakeSink()], display=display, interruptible=True)
    with pytest.raises(SpeechError):
        s.reply("hi", time.perf_counter())
    assert display.lines[-1].endswith("[interrupted]")  # the reply line was closed
    s.synthesizer = None
    s.reply("again", time.perf_counter())
    assert [m["role"] for m in chat.calls[1]] == ["system", "user", "assistant", "user"]
