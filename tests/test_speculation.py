"""Hands-free speculation: a turn's speech to text and prefill start as the user pauses, and are dropped
without a trace if the user speaks on.

The unit tests drive the segmenter, the speculator and a session with fakes; the last ones run the real
stack (Silero VAD, Smart Turn, Whisper base, SmolLM2 through llama.cpp) on real speech, in real time.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import speak_to_file, wer
from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, FakeTranscriber, feed_all, make_session
from talkgpt4all.audio import SAMPLE_RATE, Audio, load_audio
from talkgpt4all.audio.vad import CHUNK, Segmenter, VadOptions
from talkgpt4all.observers import TurnObserver
from talkgpt4all.pipeline import Session, TurnResult
from talkgpt4all.speculation import Speculator
from talkgpt4all.stt import Transcript


def loud(seconds: float) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 5) * 0.3).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def energy_vad(chunk: np.ndarray) -> float:
    return 1.0 if float(np.abs(chunk).max()) > 0.1 else 0.0


# ------------------------------------------------------------------------------------ the segmenter


def test_a_pause_is_announced_with_the_utterance_the_turn_then_ends_with():
    paused: list[np.ndarray] = []
    resumed: list[int] = []
    seg = Segmenter(
        VadOptions(silence_ms=500),
        vad=energy_vad,
        on_pause=paused.append,
        on_resume=lambda: resumed.append(len(paused)),
    )
    # "What is the capital" - a 300 ms pause - "of France?" - the pause that ends the turn.
    [(_, utterance)] = feed_all(seg, np.concatenate([loud(1.0), quiet(0.3), loud(0.6), quiet(1.0)]))
    assert len(paused) == 2 and resumed == [1]  # the first pause was announced, then taken back
    last = paused[-1]
    assert len(last) < len(utterance) and np.array_equal(utterance[: len(last)], last)
    assert np.abs(utterance[len(last) :]).max() < 0.1  # what the turn adds to it is the pause
    # The first announcement was only the first part: it is not the utterance's beginning plus a pause.
    assert np.abs(utterance[len(paused[0]) :]).max() > 0.1


def test_speech_after_a_pause_that_ended_the_utterance_still_takes_the_pause_back():
    """Push-to-talk records on after a pause long enough to end an utterance: speech after it makes
    the work started in that pause stale all the same."""
    events: list[str] = []
    seg = Segmenter(
        VadOptions(silence_ms=300),
        vad=energy_vad,
        on_pause=lambda audio: events.append("pause"),
        on_resume=lambda: events.append("resume"),
    )
    feed_all(seg, np.concatenate([loud(1.0), quiet(1.0), loud(0.064)]))  # a word too short to be a turn
    assert events == ["pause", "resume"]


def test_a_pause_shorter_than_speculate_ms_is_not_announced():
    paused: list[np.ndarray] = []
    seg = Segmenter(VadOptions(silence_ms=500, speculate_ms=96), vad=energy_vad, on_pause=paused.append)
    feed_all(seg, np.concatenate([loud(0.5), quiet(0.05), loud(0.5), quiet(1.0)]))
    assert len(paused) == 1


# ------------------------------------------------------------------------------------ the speculator


class SlowTranscriber(FakeTranscriber):
    """Takes its time, as Whisper does, and hears as many words as the audio has half-seconds."""

    def __init__(self, seconds: float = 0.1) -> None:
        super().__init__("")
        self.seconds = seconds
        self.heard: list[str] = []
        self.started = threading.Event()  # a transcription has begun

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.calls += 1
        self.started.set()
        time.sleep(self.seconds)
        text = " ".join(["word"] * max(1, round(len(audio) / SAMPLE_RATE * 2)))
        self.heard.append(text)
        return Transcript(text, language or "en")


class PrefillingChat(FakeChat):
    """A chat model that records the prompts computed ahead of a turn, and answers each message with
    "You said ...", a word at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.prefilled: list[str] = []

    def prefill(self, messages, cancelled: threading.Event) -> int:
        self.prefilled.append(messages[-1]["content"])
        return 7

    def stream(self, messages, options):
        self.enqueue(f"You said {messages[-1]['content']}.")
        yield from super().stream(messages, options)


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.01)


def session(chat: FakeChat, transcriber: FakeTranscriber, display: FakeDisplay) -> Session:
    return make_session(chat, display, transcriber=transcriber)


def test_a_turn_takes_the_work_done_in_the_pause_and_does_not_transcribe_again():
    chat, stt, display = PrefillingChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)
    result = s.hear(np.concatenate([audio, quiet(0.1)]), time.perf_counter())
    assert isinstance(result, TurnResult) and result.speculated
    assert stt.calls == 1 and chat.prefilled == ["word word"] and result.user == "word word"
    assert chat.calls[0][-1] == {"role": "user", "content": "word word"}
    assert json.loads(result.to_json())["speculated"] is True
    s.close()


def test_work_for_other_audio_is_dropped_and_the_turn_transcribes_its_own():
    chat, stt, display = PrefillingChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    s.speculate(loud(1.0) * 0.5)  # not the beginning of what the turn then heard
    assert stt.started.wait(5)  # the work in the pause is under way (on a busy machine it may lag)
    result = s.hear(np.concatenate([loud(2.0), quiet(0.1)]), time.perf_counter())
    assert result is not None and not result.speculated
    assert stt.calls == 2 and result.user == "word word word word"
    s.close()


def test_speech_after_the_pause_leaves_no_trace():
    """The user said "word word", paused, then went on: the stale work never reaches the history, the
    display or the transcript; only the whole utterance does."""
    chat, stt, display = PrefillingChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    first = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(first)
    s.cancel_speculation()  # the user speaks on
    whole = np.concatenate([first, loud(1.0), quiet(0.1)])
    s.speculate(whole)
    result = s.hear(np.concatenate([whole, quiet(0.1)]), time.perf_counter())
    assert result is not None and result.speculated
    assert result.user == "word word word word"
    assert display.lines == ["You: word word word word", "AI: You said word word word word."]
    assert s.conversation.turns[0] == {"role": "user", "content": "word word word word"}
    assert chat.calls[-1][-1]["content"] == "word word word word"
    s.close()


class WatchedChat(PrefillingChat):
    """Notes which thread wrote each token, and how many streams are open at once."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []
        self.open = self.most_open = self.closed = 0

    def stream(self, messages, options):
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            for token in super().stream(messages, options):
                self.writers.append(threading.current_thread().name)
                yield token
        finally:
            self.open -= 1
            self.closed += 1


def test_the_reply_is_begun_in_the_pause_and_the_turn_goes_on_with_it():
    chat, stt, display = WatchedChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)
    assert s.speculator is not None
    wait_until(lambda: len(chat.writers) >= 2)  # written ahead, before the turn is over
    result = s.hear(audio, time.perf_counter())
    assert result is not None and result.speculated
    assert display.lines == ["You: word word", "AI: You said word word."]  # every word once, in order
    assert len(chat.calls) == 1 and chat.writers[0] == "speculation"  # one stream, begun in the pause
    assert chat.open == 0
    s.close()


def test_a_reply_begun_for_words_the_user_then_went_on_from_is_closed_first():
    chat, stt, display = WatchedChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    first = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(first)
    wait_until(lambda: len(chat.writers) >= 2)
    s.cancel_speculation()  # the user speaks on
    whole = np.concatenate([first, loud(1.0), quiet(0.1)])
    s.speculate(whole)
    result = s.hear(whole, time.perf_counter())
    assert result is not None and result.speculated and result.reply == "You said word word word word."
    assert display.lines == ["You: word word word word", "AI: You said word word word word."]
    assert chat.most_open == 1 and chat.open == 0 and chat.closed == 2  # never two replies at once
    assert s.conversation.turns == [
        {"role": "user", "content": "word word word word"},
        {"role": "assistant", "content": "You said word word word word."},
    ]
    s.close()


class TwoSentences(FakeChat):
    """Answers "You said ..., and that is all I know." a word at a time."""

    def stream(self, messages, options):
        self.enqueue(f"You said {messages[-1]['content']}. That is all I know.")
        yield from super().stream(messages, options)


class OneAtATime(FakeSynth):
    """A synthesizer that takes its time and counts how many syntheses ever ran at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.running = self.most = 0
        self._count = threading.Lock()

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().synthesize(text, language)
        finally:
            with self._count:
                self.running -= 1


def spoken_session(synth: FakeSynth, sink: FakeSink) -> Session:
    return make_session(
        TwoSentences(), FakeDisplay(), transcriber=SlowTranscriber(), synthesizer=synth, sinks=[sink]
    )


def spoken_ahead(seconds: float) -> tuple[OneAtATime, FakeSink, Session, np.ndarray]:
    """A session whose voice takes `seconds` a piece, once the user has said "word word" and paused, and
    the reply's first piece has been spoken in the pause: its voice, sink, and the audio heard."""
    synth, sink = OneAtATime(seconds), FakeSink()
    s = spoken_session(synth, sink)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)
    wait_until(lambda: synth.spoken == ["You said word word."])
    return synth, sink, s, audio


@pytest.mark.parametrize("seconds", [0.0, 0.3])
def test_the_first_piece_is_spoken_in_the_pause_held_and_played_when_the_turn_is_confirmed(seconds: float):
    synth, sink, s, audio = spoken_ahead(seconds)  # synthesized in the pause...
    assert sink.writes == 0  # ...and held: nothing is heard before the turn is over
    result = s.hear(audio, time.perf_counter())
    assert result is not None and result.reply == "You said word word. That is all I know."
    # Played first, and not synthesized again; the rest as usual.
    assert synth.spoken == ["You said word word.", "That is all I know."]
    assert sink.written() == ["write 19", "write 19"]
    assert synth.most == 1  # one synthesis at a time, the pause's and the turn's
    s.close()


@pytest.mark.parametrize("seconds", [0.0, 0.3])
def test_a_first_piece_spoken_ahead_for_words_the_user_went_on_from_never_plays(seconds: float):
    synth, sink, s, first = spoken_ahead(seconds)
    s.cancel_speculation()  # the user speaks on
    whole = np.concatenate([first, loud(1.0), quiet(0.1)])
    s.speculate(whole)
    result = s.hear(whole, time.perf_counter())
    assert result is not None and result.reply == "You said word word word word. That is all I know."
    # What was heard: the whole utterance's reply, never the first part's.
    assert sink.written() == ["write 29", "write 19"]
    assert synth.most == 1
    s.close()


def test_a_turn_that_claims_the_work_while_its_first_piece_is_being_spoken_waits_for_it():
    """The turn comes while the pause's synthesis is under way (a slow voice): it waits for it and
    plays it, and never synthesizes beside it."""
    synth, sink = OneAtATime(0.5), FakeSink()
    s = spoken_session(synth, sink)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)
    wait_until(lambda: synth.running == 1)
    result = s.hear(audio, time.perf_counter())
    assert result is not None and synth.most == 1
    assert synth.spoken == ["You said word word.", "That is all I know."]
    assert sink.written() == ["write 19", "write 19"]
    s.close()


def test_a_typed_line_waits_for_the_work_under_way_and_ignores_it():
    chat, stt, display = PrefillingChat(), SlowTranscriber(0.3), FakeDisplay()
    s = session(chat, stt, display)
    s.speculate(loud(1.0))
    assert stt.started.wait(5)  # the worker has started on it
    result = s.reply("hi there", time.perf_counter())
    assert not result.speculated and result.user == "hi there"
    assert chat.calls[0][-1]["content"] == "hi there"
    s.close()


class CountedChat(PrefillingChat):
    """Counts the threads inside the model at once (a prefill, or a reply being written); the first
    reply is written until `gate` opens. A prefill takes `prefill_seconds`, whatever the cancel says, as
    one long evaluation in C does; close() records whether anyone was still inside."""

    def __init__(self, prefill_seconds: float = 0.0) -> None:
        super().__init__()
        self.inside = self.most = 0
        self.lock = threading.Lock()
        self.gate, self.writing, self.prefilling = threading.Event(), threading.Event(), threading.Event()
        self.prefill_seconds = prefill_seconds
        self.closed_while_inside: bool | None = None

    def _enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    def _leave(self) -> None:
        with self.lock:
            self.inside -= 1

    def prefill(self, messages, cancelled: threading.Event) -> int:
        self._enter()
        try:
            self.prefilling.set()
            time.sleep(self.prefill_seconds)
            return super().prefill(messages, cancelled)
        finally:
            self._leave()

    def stream(self, messages, options):
        self._enter()
        try:
            first = not self.calls
            yield from super().stream(messages, options)
            if first:
                self.writing.set()
                while not self.gate.wait(0.01):
                    yield " and"
        finally:
            self._leave()

    def close(self) -> None:
        self.closed_while_inside = self.inside > 0


def test_speech_over_a_typed_turn_never_puts_two_threads_in_the_model():
    """Hands-free, the first turn typed and the user speaking over its reply: the pause in that speech
    must not start work on the model while the reply is being written. (Before, the speculator was
    made mid-turn, so the turn held no claim on the engines: two threads were inside the model.)"""
    chat, stt, display = CountedChat(), SlowTranscriber(0.01), FakeDisplay()
    s = session(chat, stt, display)
    done: list[TurnResult] = []
    typed = threading.Thread(target=lambda: done.append(s.reply("hi there", time.perf_counter())))
    typed.start()
    assert chat.writing.wait(5)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)  # the listener: the user paused in what they say over the reply
    if s.speculator is not None and s.speculator.started:  # the work began beside the turn
        chat.prefilling.wait(5)
    chat.gate.set()
    typed.join(10)
    result = s.hear(audio, time.perf_counter())  # then that speech is a turn of its own
    assert done and result is not None and result.user == "word word"
    assert chat.most == 1, "two threads were inside the model at once"
    s.close()


def test_closing_waits_for_work_inside_the_model_before_freeing_it():
    """At the end of the session the model is freed only once the speculation worker is out of it,
    however long its current step takes. (Before, closing gave the worker 2 s, then freed the model
    under it: a use after free.)"""
    chat, stt, display = CountedChat(prefill_seconds=3.0), SlowTranscriber(0.01), FakeDisplay()
    s = session(chat, stt, display)
    s.speculate(np.concatenate([loud(1.0), quiet(0.1)]))
    assert chat.prefilling.wait(5)
    s.close()
    assert chat.closed_while_inside is False


def test_no_speculation_starts_while_a_turn_has_the_engines():
    stt = SlowTranscriber()
    speculator = Speculator(stt.transcribe)
    speculator.claim(None)
    speculator.start(loud(1.0))
    assert speculator.started == 0 and speculator._thread is None  # refused: no work, no worker
    speculator.release()
    speculator.start(loud(1.0))
    assert speculator.claim(loud(1.0)) is not None and stt.calls == 1
    worker = speculator._thread
    speculator.close()
    assert worker is not None and not worker.is_alive()  # closing ends the worker


def test_the_words_of_the_pause_are_there_once_heard_and_only_for_this_pause():
    """What the listener weighs in the end of a turn: the transcript of the pause under way, never one
    that is still to come, stale, or a turn's."""
    stt = SlowTranscriber(seconds=0.3)
    speculator = Speculator(stt.transcribe)
    assert speculator.heard() is None
    speculator.start(loud(1.0))
    assert speculator.heard() is None  # Whisper is still at it
    wait_until(lambda: speculator.heard() is not None)
    assert speculator.heard() == Transcript("word word", "en")
    speculator.cancel()  # the user spoke on
    assert speculator.heard() is None
    speculator.start(loud(2.0))
    assert speculator.heard() is None  # the next pause's words are not the last one's
    wait_until(lambda: speculator.heard() is not None)
    assert speculator.heard() == Transcript("word word word word", "en")
    speculator.claim(loud(2.0))
    assert speculator.heard() is None  # a turn has them: a pause now (barge-in) is another utterance
    speculator.release()
    speculator.close()


def test_ctrl_c_while_a_turn_waits_for_the_engines_leaves_no_claim_behind():
    """Ctrl-C as a turn waits for the speculation worker to finish its step: the turn is gone, and so
    is its claim (speculation goes on for the next turn, and nothing is released twice)."""
    import _thread

    stt = SlowTranscriber(1.0)
    speculator = Speculator(stt.transcribe)
    speculator.start(loud(1.0))
    assert stt.started.wait(5)  # the worker holds the engines for a second
    threading.Timer(0.2, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        speculator.claim(None)  # waits for the engines
    speculator.release()  # as the turn's finally does: nothing was claimed
    stt.started.clear()
    speculator.start(loud(1.0))
    assert speculator.started == 2 and stt.started.wait(5)  # the next pause is worked on
    speculator.close()


def test_failed_work_is_done_again_by_the_turn():
    class FailsOnce(SlowTranscriber):
        def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("out of memory")
            return super().transcribe(audio, language)

    chat, stt, display = PrefillingChat(), FailsOnce(), FakeDisplay()
    s = session(chat, stt, display)
    audio = np.concatenate([loud(1.0), quiet(0.1)])
    s.speculate(audio)
    result = s.hear(audio, time.perf_counter())
    assert result is not None and not result.speculated and result.user == "word word"
    s.close()


# ------------------------------------------------------------------------------------ real models


class PacedMic:
    """A microphone that says a recording in real time (32 ms blocks), then silence."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self.position, self.captured_at = audio, 0, 0.0
        self._next = 0.0

    def start(self) -> None:
        self._next = time.perf_counter()

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        chunk = self.audio[self.position : self.position + CHUNK]
        self.position += CHUNK
        self._next += CHUNK / SAMPLE_RATE
        time.sleep(max(0.0, self._next - time.perf_counter()))
        self.captured_at = self._next
        return np.pad(chunk, (0, CHUNK - len(chunk)))

    def close(self) -> None:
        pass


def hands_free_turn(audio: np.ndarray, tmp_path: Path, *flags: str) -> dict:
    """One hands-free turn through the whole program, in process: its transcript line."""
    from talkgpt4all import app, cli

    transcript = tmp_path / f"turns{len(list(tmp_path.glob('turns*')))}.jsonl"
    args = [
        "--vad",
        "--no-play",
        "--transcript",
        str(transcript),
        "--temperature",
        "0",
        "--seed",
        "1",
        "--max-tokens",
        "48",
        "--tts",
        "none",
        *flags,
    ]
    config = cli.configure(args)
    read, write = os.pipe()

    class QuitAfterTheTurn(TurnObserver):
        def turn_ended(self, result: TurnResult) -> None:
            os.close(write)  # Ctrl-D

    with os.fdopen(read, "rb", buffering=0) as keys:
        code = app.run(
            config,
            keys,
            io.StringIO(),
            microphone=PacedMic(audio),
            observers=[QuitAfterTheTurn()],
        )
    assert code == 0
    [line] = transcript.read_text().splitlines()
    return json.loads(line)


@pytest.fixture(scope="module")
def question_with_a_pause(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """ "Tell me about the" - 300 ms - "capital of France.": a real pause inside a real request."""
    folder = tmp_path_factory.mktemp("speech")
    first = load_audio(speak_to_file("Tell me about the", folder / "a.wav"))
    second = load_audio(speak_to_file("capital of France.", folder / "b.wav"))

    def voiced(a: np.ndarray) -> np.ndarray:
        loud_at = np.flatnonzero(np.abs(a) > 0.01)
        return a[loud_at[0] : loud_at[-1] + 1]

    return np.concatenate([quiet(0.5), voiced(first), quiet(0.3), voiced(second), quiet(2.5)])


def test_real_speech_a_pause_inside_the_question_then_the_end_a_reply_as_without_speculation(
    question_with_a_pause: np.ndarray, tmp_path: Path
):
    """The work started in the pause inside the question is dropped; the work started as the question
    ended is what the turn uses: the same words, the same prompt computed once, the same reply."""
    # A fixed 600 ms pause ends the turn: the one inside the request is shorter. (Which pauses end a
    # turn is the turn model's business, tested on its own.)
    flags = ("--whisper-model", "base", "--silence-ms", "600")
    ahead = hands_free_turn(question_with_a_pause, tmp_path, *flags)
    waited = hands_free_turn(question_with_a_pause, tmp_path, *flags, "--no-speculate")
    assert ahead.get("speculated") is True and "speculated" not in waited
    assert wer("Tell me about the capital of France.", ahead["user"]) <= 0.2, ahead["user"]
    assert ahead["user"] == waited["user"]
    assert ahead["reply"] == waited["reply"] and ahead["reply"]
    # The prompt was computed in the pause, and the turn computed nothing more: had it computed the
    # prompt again, the count would be about twice the other run's. (It may be lower: the dropped work
    # left "Tell me about the" in the model's cache, and a cache is reused as far as it matches.)
    assert 0 < ahead["prompt_evaluated"] <= waited["prompt_evaluated"]


# ------------------------------------------------------------------------------------ push-to-talk


class GrowingRecorder:
    """A push-to-talk recording of a script, growing in real time from start()."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self._started = audio, 0.0

    def start(self) -> None:
        self._started = time.perf_counter()

    def so_far(self) -> np.ndarray:
        return self.audio[: int((time.perf_counter() - self._started) * SAMPLE_RATE)]

    def stop(self) -> np.ndarray:
        return self.so_far()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started


@pytest.fixture(scope="module")
def spoken_question(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    audio = load_audio(
        speak_to_file("What is the capital of France?", tmp_path_factory.mktemp("q") / "q.wav")
    )
    return audio[: np.flatnonzero(np.abs(audio) > 0.01)[-1] + 1]


def test_push_to_talk_a_pause_before_enter_and_the_transcript_is_ready(spoken_question: np.ndarray):
    """Real speech, the real VAD: the user speaks, pauses, and presses Enter a second later. The turn's
    speech to text was done in the pause; the turn does not transcribe again."""
    from talkgpt4all.loops import RecordingWatcher

    chat, stt, display = PrefillingChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    recorder = GrowingRecorder(np.concatenate([quiet(0.3), spoken_question, quiet(5.0)]))
    recorder.start()
    watcher = RecordingWatcher(recorder, s.speculate, s.cancel_speculation)
    wait_until(lambda: recorder.elapsed > len(spoken_question) / SAMPLE_RATE + 1.3)
    audio = recorder.stop()
    watcher.finish(audio)
    before = stt.calls  # one per pause the user made (espeak pauses inside the question, too)
    result = s.hear(audio, time.perf_counter())
    assert result is not None and result.speculated and before >= 1 and stt.calls == before
    s.close()


def test_push_to_talk_speech_right_up_to_enter_is_transcribed_whole(spoken_question: np.ndarray):
    """The user paused, then spoke on until Enter: the work from the pause is stale, and the turn hears
    the whole recording."""
    from talkgpt4all.loops import RecordingWatcher

    chat, stt, display = PrefillingChat(), SlowTranscriber(), FakeDisplay()
    s = session(chat, stt, display)
    recorder = GrowingRecorder(np.concatenate([quiet(0.3), spoken_question, quiet(0.5), spoken_question]))
    recorder.start()
    watcher = RecordingWatcher(recorder, s.speculate, s.cancel_speculation)
    # Enter while the second question is still being said.
    wait_until(lambda: recorder.elapsed > 0.8 + len(spoken_question) / SAMPLE_RATE + 0.8)
    audio = recorder.stop()
    watcher.finish(audio)
    before = stt.calls
    result = s.hear(audio, time.perf_counter())
    assert result is not None and not result.speculated and before >= 1 and stt.calls == before + 1
    # What the turn heard is the whole recording (the fake hears a word per half second).
    assert result.user == stt.heard[-1] and len(result.user.split()) == round(len(audio) / SAMPLE_RATE * 2)
    s.close()
