"""The turn loop with fakes: what is shown, spoken, remembered and logged."""

import json
import threading
import time

import numpy as np
import pytest

from conftest import FakeOutputStream
from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, FakeTranscriber, make_session, settings
from talkgpt4all.pipeline import DIDNT_CATCH, Session
from talkgpt4all.transcript import TranscriptWriter

SPEECH = (np.sin(np.arange(16000) / 5) * 0.3).astype(np.float32)  # one second of loud tone


def session(chat=None, *, stream: bool = True, interruptible: bool = True, **kw) -> Session:
    """A session on fakes; interruptible: interactive, where Ctrl-C ends only the reply."""
    config = settings(turns={"stream": stream}, io={"text": not interruptible})
    return make_session(chat, kw.pop("display", None), config=config, **kw)


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


def test_the_first_sentence_is_spoken_while_the_rest_is_generated():
    spoken_first = threading.Event()

    class SlowChat(FakeChat):
        def stream(self, messages, options):
            yield from ["One.", " Two"]
            # A pipeline that waited for the whole reply would never get here.
            assert spoken_first.wait(5), "sentence 1 was not spoken before sentence 2 was generated"
            yield from [".", " Three."]

    sink = FakeSink(on_write=lambda n: spoken_first.set() if n == 1 else None)
    synth = FakeSynth()
    result = session(SlowChat(), synthesizer=synth, sinks=[sink]).reply("count", time.perf_counter())
    assert synth.spoken == ["One.", "Two.", "Three."] and not result.interrupted


def test_the_model_waits_while_the_first_clause_is_synthesized_and_not_after():
    """On two cores, generating beside the first clause's synthesis made it three times as slow: the
    turn pulls no token while the first sentence said is synthesized, and goes on while it plays."""
    pulled_during: list[int] = []

    class Synth(FakeSynth):
        def synthesize(self, text, language=None):
            start = chat.pulled
            audio = super().synthesize(text, language)
            if len(self.spoken) == 1:
                pulled_during.append(chat.pulled - start)
            return audio

    class SlowChat(FakeChat):  # a token every 10 ms
        def stream(self, messages, options):
            for token in super().stream(messages, options):
                threading.Event().wait(0.01)
                yield token

    chat = SlowChat().enqueue("The first clause here. " + " ".join(f"Word{i}." for i in range(20)))
    synth = Synth(seconds=0.2)
    result = session(chat, synthesizer=synth, sinks=[FakeSink()]).reply("go", time.perf_counter())
    assert synth.spoken[0] == "The first clause here."
    assert pulled_during == [0]  # no token while the first clause was made
    assert synth.spoken[1:] == [f"Word{i}." for i in range(20)] and result.reply.endswith("Word19.")


def test_sentences_play_in_order_when_speech_is_slower_than_the_model():
    reply = " ".join(f"Sentence number {i}." for i in range(12))
    synth, sink = FakeSynth(seconds=0.01), FakeSink(play_seconds=0.005)
    display = FakeDisplay()
    s = session(FakeChat().enqueue(reply), synthesizer=synth, sinks=[sink], display=display)
    result = s.reply("go", time.perf_counter())
    expected = [f"Sentence number {i}." for i in range(12)]
    assert synth.spoken == expected  # none lost, none doubled, in order
    assert sink.written() == [f"write {len(t)}" for t in expected]
    assert result.reply == reply and display.lines[-1] == f"AI: {reply}"


def test_the_no_stream_baseline_speaks_the_whole_reply_once_at_the_end():
    chat, synth = FakeChat().enqueue("One. Two. Three."), FakeSynth()
    s = session(chat, synthesizer=synth, sinks=[FakeSink()], stream=False)
    result = s.reply("count", time.perf_counter())
    assert synth.spoken == ["One. Two. Three."]
    t = result.timings
    assert t.llm_first_token <= t.first_sentence <= t.first_audio <= t.total


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


def test_barge_in_stops_playback_drains_the_queues_and_truncates_history():
    holder: list[Session] = []
    reply = "First part. Second part. Third part. Fourth part. Fifth part."
    # Each piece takes 30 s to play; the user presses Enter 0.2 s into the first one.
    sink = FakeSink(play_seconds=30, on_write=lambda n: threading.Timer(0.2, holder[0].stop).start())
    chat, synth, display = FakeChat().enqueue(reply, "Next."), FakeSynth(), FakeDisplay()
    s = session(chat, synthesizer=synth, sinks=[sink], display=display, interruptible=True)
    holder.append(s)
    started = time.perf_counter()
    result = s.reply("talk", time.perf_counter())
    assert time.perf_counter() - started < 10  # the 30 s playback was cut, not waited out

    assert result.interrupted and "stop" in sink.events and sink.events[-1] == "end"
    assert sink.writes == 1  # what was queued behind it was dropped, not played
    assert display.lines[-1].endswith("[interrupted]")
    # History keeps what reached the speakers, marked as cut off.
    assert result.reply == "First part."
    s.reply("again", time.perf_counter())
    assert chat.calls[1][2] == {"role": "assistant", "content": "First part. …"}


def test_ctrl_c_while_a_reply_is_spoken_stops_the_sound_at_once(fake_portaudio):
    """Ctrl-C while espeak-ng's voice plays on the speaker (a SpeakerSink on a stand-in PortAudio device):
    the sound stops within 0.2 s, the history keeps only what was heard, and no thread of the turn is
    left. (Before, the voice's threads were joined without being stopped: the whole reply played on.)"""
    import _thread

    from talkgpt4all.audio.devices import SpeakerSink
    from talkgpt4all.tts.commands import Espeak

    reply = "The first sentence is here. " + " ".join(f"Then sentence {n} follows it." for n in range(2, 7))
    sink = SpeakerSink()
    display = FakeDisplay()
    s = session(
        FakeChat().enqueue(reply), synthesizer=Espeak(), sinks=[sink], display=display, interruptible=True
    )
    heard_at_ctrl_c: list[int] = []
    pressed_at: list[float] = []
    pressed = threading.Event()

    def press_ctrl_c_once_it_speaks() -> None:
        deadline = time.monotonic() + 30
        while not (FakeOutputStream.streams and FakeOutputStream.streams[-1].heard() >= 5):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        heard_at_ctrl_c.append(FakeOutputStream.streams[-1].heard())
        pressed_at.append(time.monotonic())
        pressed.set()
        _thread.interrupt_main()  # what a terminal's SIGINT does to the main thread

    threading.Thread(target=press_ctrl_c_once_it_speaks, daemon=True).start()
    result = s.reply("tell me a story", time.perf_counter())
    returned = time.monotonic()
    assert pressed.is_set(), "the reply was never heard"
    stream = FakeOutputStream.streams[-1]
    time.sleep(0.3)  # anything still playing would be heard by now
    after = stream.heard() - heard_at_ctrl_c[0]
    assert after <= 20, f"{after * 10} ms of the reply played after Ctrl-C"  # 10 ms blocks: 0.2 s
    assert result.interrupted and display.lines[-1].endswith("[interrupted]")
    assert result.reply == "The first sentence is here."  # what was heard, not what was written
    assert s.conversation.turns[-1] == {"role": "assistant", "content": "The first sentence is here. …"}
    assert not [t for t in threading.enumerate() if t.name in ("tts", "playback") and t.is_alive()]
    assert returned - pressed_at[0] < 2  # the turn is over at once, not when the reply would have been
    sink.close()


def test_ctrl_c_in_headless_mode_propagates():
    class Interrupted(FakeChat):
        def stream(self, messages, options):
            yield "Hello there."
            raise KeyboardInterrupt

    s = session(Interrupted(), synthesizer=FakeSynth(), sinks=[FakeSink()], interruptible=False)
    with pytest.raises(KeyboardInterrupt):
        s.reply("talk", time.perf_counter())


def test_warm_up_runs_each_engine_once_and_opens_the_speakers():
    chat, stt, synth, sink = FakeChat().enqueue("x"), FakeTranscriber("x"), FakeSynth(), FakeSink()
    s = session(chat, transcriber=stt, synthesizer=synth, sinks=[sink])
    s.warm_up()
    assert stt.calls == 1 and len(chat.calls) == 1 and synth.spoken == ["Hi"]
    assert sink.events == ["prepare 16000"]
    assert s.conversation.turns == []  # warming up is not part of the conversation


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
    assert set(lines[0]) == {
        "turn",
        "user",
        "language",
        "reply",
        "prompt_tokens",
        "prompt_evaluated",
        "timings",
    }
    stages = {"endpoint", "stt", "llm_first_token", "first_sentence", "first_audio", "total"}
    assert set(lines[0]["timings"]) == stages
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
    failed = s.reply("hi", time.perf_counter())
    assert failed.error == "espeak broke" and not failed.interrupted  # a fault, not the user
    assert display.lines[-1].endswith("[interrupted]") and display.errors == ["espeak broke"]
    s.engines.synthesizer = None
    s.reply("again", time.perf_counter())
    # Nothing was heard of the failed reply: it left no trace, and the history still alternates.
    assert [m["role"] for m in chat.calls[1]] == ["system", "user"]


def test_a_message_too_long_for_the_context_is_an_error_and_leaves_no_trace():
    chat = FakeChat().enqueue("Fine.")
    s = session(chat)
    result = s.reply("word " * 2000, time.perf_counter())
    assert result.error and "too long" in result.error and chat.calls == []
    s.reply("short", time.perf_counter())
    assert [m["role"] for m in chat.calls[0]] == ["system", "user"]


def test_a_message_too_long_after_three_turns_leaves_the_three_turns():
    chat = FakeChat().enqueue("One.", "Two.", "Three.", "Four.")
    s = session(chat)
    for question in ("first", "second", "third"):
        s.reply(question, time.perf_counter())
    result = s.reply("word " * 2000, time.perf_counter())
    assert result.error and "too long" in result.error
    assert [m["content"] for m in s.conversation.turns] == [
        "first",
        "One.",
        "second",
        "Two.",
        "third",
        "Three.",
    ]
    s.reply("fourth", time.perf_counter())
    assert [m["content"] for m in chat.calls[-1][1:]] == [
        "first", "One.", "second", "Two.", "third", "Three.", "fourth",
    ]  # fmt: skip
