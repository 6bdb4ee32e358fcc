"""The interactive loops and their threads, driven in process with scripted keys and fake devices.

Keys come through a real pipe, written by the test as a person types; the session uses fake engines
(the pipeline's own logic is real). Each test would hang or fail without the fix it names.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np
import pytest

import fakes
from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, FakeTranscriber, feed_all
from talkgpt4all import loops
from talkgpt4all.audio.vad import CHUNK, Segmenter, VadOptions
from talkgpt4all.errors import DeviceError, ExitCode
from talkgpt4all.pipeline import Session
from talkgpt4all.stt import Transcript

SPEECH = (np.sin(np.arange(16000) / 5) * 0.3).astype(np.float32)


class Keys:
    """A pipe standing in for the keyboard: the loop reads one end, the test types into the other."""

    def __init__(self) -> None:
        read, self._write = os.pipe()
        self.stream = os.fdopen(read, "rb", buffering=0)

    def type(self, text: str) -> None:
        os.write(self._write, text.encode())

    def ctrl_d(self) -> None:
        os.close(self._write)


class FakeRecorder:
    level = -60.0

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stops = 0

    def start(self) -> None:
        self.started.set()

    def stop(self) -> np.ndarray:
        self.stops += 1
        return SPEECH

    def so_far(self) -> np.ndarray:
        return SPEECH[:0]

    @property
    def elapsed(self) -> float:
        return 1.0


def make_session(chat: FakeChat, display: FakeDisplay, **kw: object) -> Session:
    return fakes.make_session(chat, display, **kw)  # type: ignore[arg-type]


def in_thread(target: Callable[[], int]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def talk(session: Session, keys: IO[bytes]) -> tuple[threading.Thread, list[object]]:
    """Push-to-talk on a thread, with keys from the stream and a fake recorder."""
    return in_thread(lambda: loops.push_to_talk(session, FakeRecorder(), keys, io.StringIO()))


def story_under_way(chat: GatedChat) -> tuple[Keys, FakeDisplay, threading.Thread, list[object]]:
    """Push-to-talk, where the user has typed a request and the (endless) story is being told."""
    keys, display = Keys(), FakeDisplay()
    thread, outcome = talk(make_session(chat, display), keys.stream)
    keys.type("tell me a story\n")
    assert chat.streaming.wait(5)
    return keys, display, thread, outcome


def finished(thread: threading.Thread, outcome: list[object], timeout: float = 10) -> object:
    thread.join(timeout)
    assert not thread.is_alive(), "the loop hung"
    return outcome[0]


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.01)


class GatedChat(FakeChat):
    """The first reply streams until the gate opens (or the turn is stopped); later ones at once."""

    def __init__(self) -> None:
        super().__init__()
        self.streaming = threading.Event()
        self.gate = threading.Event()

    def stream(self, messages, options) -> Iterator[str]:
        if self.calls:
            yield from super().stream(messages, options)
            return
        self.calls.append([dict(m) for m in messages])
        yield "Once upon a time,"
        self.streaming.set()
        while not self.gate.wait(0.01):
            yield " and then"


def test_ctrl_d_while_recording_quits_cleanly():
    keys, recorder, display = Keys(), FakeRecorder(), FakeDisplay()
    chat = FakeChat()
    session = make_session(chat, display, transcriber=FakeTranscriber("hello"))
    err = io.StringIO()
    thread, outcome = in_thread(lambda: loops.push_to_talk(session, recorder, keys.stream, err))
    keys.type("\n")  # Enter: start talking
    assert recorder.started.wait(5)
    keys.ctrl_d()  # Ctrl-D while recording
    assert finished(thread, outcome) == ExitCode.OK
    assert recorder.stops == 1 and chat.calls == []  # the recording was dropped, nothing was sent


def test_push_to_talk_a_microphone_gone_mid_recording_keeps_what_was_said_and_waits_for_it():
    """The recording stops where the microphone went away, and what was said is the turn. Until the
    microphone is back, Enter says so (one line) instead of recording nothing."""

    class VanishingRecorder(FakeRecorder):
        gone: str | None = None

        def lost(self) -> str | None:
            return self.gone

        def available(self) -> bool:
            return self.gone is None

    keys, recorder, display = Keys(), VanishingRecorder(), FakeDisplay()
    chat = FakeChat().enqueue("Paris.", "Rome.")
    session = make_session(chat, display, transcriber=FakeTranscriber("capital of France?"))
    err = io.StringIO()
    thread, outcome = in_thread(lambda: loops.push_to_talk(session, recorder, keys.stream, err))
    keys.type("\n")  # Enter: start talking
    assert recorder.started.wait(5)
    recorder.gone = "headset is gone"  # unplugged while the user speaks
    wait_until(lambda: "AI: Paris." in display.lines)
    recorder.started.clear()
    keys.type("\n")  # Enter again, with no microphone
    wait_until(lambda: "The microphone is not there" in err.getvalue())
    recorder.gone = None
    keys.type("\n")  # back: Enter records
    assert recorder.started.wait(5)
    keys.type("\n")
    wait_until(lambda: "AI: Rome." in display.lines)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert "The microphone is gone (headset is gone): the recording stopped there." in err.getvalue()
    assert display.lines[0] == "You: capital of France?" and recorder.stops == 2


def unread(stream: IO[bytes]) -> int:
    """Bytes typed that the keyboard thread has not read yet."""
    import array
    import fcntl
    import termios

    count = array.array("i", [0])
    fcntl.ioctl(stream.fileno(), termios.FIONREAD, count)
    return count[0]


def test_enter_pressed_as_soon_as_a_reply_is_over_starts_a_recording():
    """The turn is over once its reply has been shown (and heard): Enter from then on is the next
    recording, never taken for "stop the reply". (Before, an Enter read while the turn was being
    recorded and tidied up was swallowed as a stop, and the user's press did nothing: the cause of a
    flaky test here.)"""
    keys, recorder = Keys(), FakeRecorder()

    class Display(FakeDisplay):
        def turn_ended(self, result) -> None:
            super().turn_ended(result)
            keys.type("\n")  # the user presses Enter the moment the reply is over
            wait_until(lambda: unread(keys.stream) == 0)  # and the keyboard has read it

    chat = FakeChat().enqueue("Paris.")
    session = make_session(chat, Display(), transcriber=FakeTranscriber("capital of France?"))
    thread, outcome = in_thread(lambda: loops.push_to_talk(session, recorder, keys.stream, io.StringIO()))
    keys.type("what is the capital of France?\n")
    assert recorder.started.wait(5), "the Enter pressed after the reply did not start a recording"
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK


def test_a_line_typed_during_a_reply_stops_it_and_is_the_next_turn():
    chat = GatedChat().enqueue("Second answer.")  # after the gated story
    keys, display, thread, outcome = story_under_way(chat)
    keys.type("what is the capital of France?\n")  # typed while the story is told
    wait_until(lambda: len(chat.calls) == 2)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert display.lines[0] == "You: tell me a story"
    assert display.lines[1].startswith("AI: Once upon a time,") and display.lines[1].endswith("[interrupted]")
    assert display.lines[2:] == ["You: what is the capital of France?", "AI: Second answer."]
    assert chat.calls[1][-1] == {"role": "user", "content": "what is the capital of France?"}


def test_enter_during_a_reply_only_stops_it():
    chat = GatedChat()
    keys, display, thread, outcome = story_under_way(chat)
    keys.type("\n")
    wait_until(lambda: any("[interrupted]" in line for line in display.lines))
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert len(chat.calls) == 1  # Enter was not taken as "start recording" after the stop


def test_ctrl_d_during_a_reply_stops_it_and_quits():
    chat = GatedChat()
    keys, display, thread, outcome = story_under_way(chat)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert display.lines[-1].endswith("[interrupted]")


def test_enter_during_speech_recognition_cancels_the_turn():
    keys, display, chat = Keys(), FakeDisplay(), FakeChat().enqueue("never said")
    transcribing, release = threading.Event(), threading.Event()

    class SlowEars(FakeTranscriber):
        def transcribe(self, audio, language=None):
            transcribing.set()
            release.wait(5)
            return super().transcribe(audio, language)

    session = make_session(chat, display, transcriber=SlowEars("what is the capital of France"))
    thread, outcome = talk(session, keys.stream)
    keys.type("\n")  # start talking
    keys.type("\n")  # done talking: speech recognition starts
    assert transcribing.wait(5)
    keys.type("\n")  # Enter while it is being transcribed: the user takes it back
    time.sleep(0.2)  # the keyboard thread reads the key (there is no event to wait on: it must not act)
    release.set()
    wait_until(lambda: any("[interrupted]" in line for line in display.lines))
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert chat.calls == []  # the model was never asked
    assert session.conversation.turns == []


def test_a_keyboard_that_fails_with_eio_ends_the_loop_quietly(capsys):
    class ClosedTerminal(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise OSError(5, "Input/output error")  # what reading a closed terminal gives

    hook_calls: list[object] = []
    saved = threading.excepthook
    threading.excepthook = hook_calls.append
    try:
        session = make_session(FakeChat(), FakeDisplay())
        stream = io.BufferedReader(ClosedTerminal())
        thread, outcome = talk(session, stream)
        assert finished(thread, outcome) == ExitCode.OK
    finally:
        threading.excepthook = saved
    assert hook_calls == []  # no "Exception in thread keyboard"


def test_invalid_utf8_is_kept_with_a_replacement_and_a_warning(caplog):
    chat, display = FakeChat().enqueue("Yes.", "No."), FakeDisplay()
    session = fakes.make_session(chat, display, config=fakes.HEADLESS)
    code = loops.run_text(session, io.BytesIO(b"caf\xe9 please\n\xe4\xb8\xad\xe6\x96\x87\n"))
    assert code == ExitCode.OK
    assert display.lines[0] == "You: caf� please" and display.lines[2] == "You: 中文"
    assert "line 1 of the input is not valid UTF-8" in caplog.text


def test_headless_goes_on_after_a_failed_turn_and_exits_1():
    chat, display = FakeChat().enqueue("First.", "Third."), FakeDisplay()
    session = fakes.make_session(chat, display, config=fakes.HEADLESS)
    code = loops.run_text(session, io.BytesIO(b"one\n" + b"word " * 2000 + b"\nthree\n"))
    assert code == ExitCode.ERROR
    assert [line for line in display.lines if line.startswith("You")][-1] == "You: three"
    assert len(display.errors) == 1 and "too long" in display.errors[0]


# ------------------------------------------------------------------ hands-free: the listener thread


def loud(seconds: float) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * 16000)) / 3) * 0.5).astype(np.float32)


class FakeMic:
    """Hands out CHUNK-sample blocks from a script, then silence, or fails as told."""

    def __init__(self, audio: np.ndarray | None = None, fail: BaseException | None = None) -> None:
        self.audio = audio if audio is not None else np.zeros(0, np.float32)
        self.fail, self.position, self.closed = fail, 0, False
        self.silent = False  # True: a device that stopped sending anything
        self.captured_at = 0.0
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.closed = False

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        if self.fail is not None:
            raise self.fail
        if self.silent:
            time.sleep(timeout)
            return None
        time.sleep(0.001)
        chunk = self.audio[self.position : self.position + CHUNK]
        self.position += CHUNK
        self.captured_at = time.perf_counter()
        return np.pad(chunk, (0, CHUNK - len(chunk)))  # after the script: silence

    def close(self) -> None:
        self.closed = True


def energy_vad(chunk: np.ndarray) -> float:
    return 1.0 if float(np.abs(chunk).max()) > 0.1 else 0.0


def hands_free(
    session: Session,
    mic: FakeMic,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    err: io.StringIO | None = None,
):
    import talkgpt4all.audio.vad as vad

    original = vad.Segmenter

    def with_energy_vad(options, **hooks):
        return original(options, vad=energy_vad, **hooks)

    monkeypatch.setattr(vad, "Segmenter", with_energy_vad)
    return in_thread(
        lambda: loops.hands_free(session, mic, VadOptions(silence_ms=200), keys.stream, err or io.StringIO())
    )


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "listener" and t.is_alive()]


def test_hands_free_an_utterance_is_a_turn_and_ctrl_d_quits_leaving_no_thread(monkeypatch):
    chat, display, keys = FakeChat().enqueue("Paris."), FakeDisplay(), Keys()
    session = make_session(chat, display, transcriber=FakeTranscriber("capital of France?"))
    mic = FakeMic(np.concatenate([np.zeros(8000, np.float32), loud(1.0)]))
    thread, outcome = hands_free(session, mic, keys, monkeypatch)
    wait_until(lambda: "AI: Paris." in display.lines)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert mic.closed and listener_threads() == []


def test_hands_free_a_dying_listener_ends_the_loop_with_one_error(monkeypatch):
    session = make_session(FakeChat(), FakeDisplay(), transcriber=FakeTranscriber("x"))
    mic = FakeMic(fail=OSError(19, "No such device"))
    thread, outcome = hands_free(session, mic, Keys(), monkeypatch)
    error = finished(thread, outcome)
    assert isinstance(error, DeviceError) and "No such device" in str(error)
    assert listener_threads() == []


def test_with_debug_a_dying_listener_keeps_its_own_traceback(monkeypatch):
    """--debug shows where the listener failed: the one-line error keeps the original as its cause."""
    session = make_session(FakeChat(), FakeDisplay(), transcriber=FakeTranscriber("x"))
    original = OSError(19, "No such device")
    thread, outcome = hands_free(session, FakeMic(fail=original), Keys(), monkeypatch)
    error = finished(thread, outcome)
    assert isinstance(error, DeviceError) and error.__cause__ is original


def test_hands_free_a_microphone_that_goes_away_is_waited_for_and_heard_again(monkeypatch):
    """A microphone that stops sending (unplugged, where no sound server says so) is one notice, not
    the end of the session: its stream is reopened until it sends again, and then it is listened to."""
    monkeypatch.setattr(loops, "MIC_SILENT_TIMEOUT", 0.3)
    monkeypatch.setattr(loops, "MIC_RETRY_SECONDS", 0.05)
    chat, display, keys, err = FakeChat().enqueue("Paris."), FakeDisplay(), Keys(), io.StringIO()
    session = make_session(chat, display, transcriber=FakeTranscriber("capital of France?"))
    mic = FakeMic()
    mic.silent = True
    thread, outcome = hands_free(session, mic, keys, monkeypatch, err)
    wait_until(lambda: "The microphone is gone (it sent nothing for 0 s)" in err.getvalue())
    wait_until(lambda: mic.starts >= 3)  # tried again, and again: still nothing
    mic.audio, mic.silent = np.concatenate([np.zeros(8000, np.float32), loud(1.0)]), False
    wait_until(lambda: "AI: Paris." in display.lines)
    notices = [line for line in err.getvalue().splitlines() if "microphone" in line]
    assert notices == [
        "The microphone is gone (it sent nothing for 0 s): waiting for it to come back…",
        "The microphone is back: listening again.",
    ], notices
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert mic.closed and listener_threads() == []


def test_hands_free_a_typed_line_is_a_turn(monkeypatch):
    chat, display, keys = FakeChat().enqueue("Hello!"), FakeDisplay(), Keys()
    session = make_session(chat, display, transcriber=FakeTranscriber("x"))
    thread, outcome = hands_free(session, FakeMic(), keys, monkeypatch)
    keys.type("hi there\n")
    wait_until(lambda: "AI: Hello!" in display.lines)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK


def test_barge_in_stops_the_reply_and_the_speech_is_the_next_turn(monkeypatch):
    chat, display, keys = GatedChat(), FakeDisplay(), Keys()
    chat.enqueue("Paris.")
    sink = FakeSink(play_seconds=30)
    session = make_session(
        chat,
        display,
        transcriber=FakeTranscriber("capital of France?"),
        synthesizer=FakeSynth(),
        sinks=[sink],
    )
    # The user starts to speak, waits for the reply, then talks over it.
    mic = FakeMic(np.concatenate([loud(0.6), np.zeros(16000 * 2, np.float32), loud(0.6)]))
    import talkgpt4all.audio.vad as vad

    original = vad.Segmenter
    monkeypatch.setattr(vad, "Segmenter", lambda o, **hooks: original(o, vad=energy_vad, **hooks))
    thread, outcome = in_thread(
        lambda: loops.hands_free(
            session, mic, VadOptions(silence_ms=200), keys.stream, io.StringIO(), barge_in=True
        )
    )
    wait_until(lambda: len(display.lines) >= 3)  # the next turn has begun
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert display.lines[1].endswith("[interrupted]") and display.lines[2] == "You: capital of France?"
    assert chat.calls[1][-1] == {"role": "user", "content": "capital of France?"}


class HalfSeconds(FakeTranscriber):
    """Hears a word for each half-second of audio: what it heard tells how much it was given."""

    def __init__(self) -> None:
        super().__init__("")

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.calls += 1
        return Transcript(" ".join(["word"] * max(1, round(len(audio) / 8000))), "en")


@pytest.mark.parametrize("barge_in", [True, False])
def test_speech_that_goes_on_before_the_reply_sounds_makes_one_turn(monkeypatch, barge_in: bool):
    """The user paused long enough to end the turn, then went on before its reply made a sound: the turn
    is taken back without a sound or a trace, and the two parts are heard as one turn."""
    chat, display, keys = FakeChat().enqueue("Too soon.", "All of it."), FakeDisplay(), Keys()
    sink = FakeSink()
    synth = FakeSynth(seconds=0.5)  # the first sound is still half a second away when the user goes on
    session = make_session(chat, display, transcriber=HalfSeconds(), synthesizer=synth, sinks=[sink])
    mic = FakeMic(np.concatenate([loud(1.0), np.zeros(16000 * 4 // 10, np.float32), loud(1.0)]))
    import talkgpt4all.audio.vad as vad

    original = vad.Segmenter
    monkeypatch.setattr(vad, "Segmenter", lambda o, **hooks: original(o, vad=energy_vad, **hooks))
    thread, outcome = in_thread(
        lambda: loops.hands_free(
            session, mic, VadOptions(silence_ms=200), keys.stream, io.StringIO(), barge_in=barge_in
        )
    )
    wait_until(lambda: any(line.startswith("AI: All of it.") for line in display.lines))
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    first, merged = "word " * 2, "word " * 5  # 1 s, then 1 s + the pause + 1 s (and some pre-roll)
    assert display.lines[0] == f"You: {first.strip()}" and display.lines[1].startswith("(went on from")
    assert display.lines[2].startswith("You: word word word word") and display.lines[3] == "AI: All of it."
    # Nothing of the turn taken back was heard or kept: one reply played, one turn in the history.
    assert synth.spoken[-1] == "All of it."
    assert sink.written() == [f"write {len('All of it.')}"]
    assert [m["content"] for m in session.conversation.messages if m["role"] == "assistant"] == ["All of it."]
    assert session.turns == 1
    assert len(merged) > len(first)


@pytest.mark.parametrize("user_goes_on", [True, False])
def test_a_reply_about_to_sound_waits_while_the_microphone_may_be_hearing_the_user_go_on(
    monkeypatch, user_goes_on: bool
):
    """Speech is a turn (and can take a turn back) only once it has lasted min_speech_ms: meanwhile a
    reply about to sound waits. If it was the user, nothing is heard; if it was a cough, the reply plays."""
    from talkgpt4all import pipeline

    monkeypatch.setattr(pipeline, "WAIT_FOR_SPEECH", 30.0)  # longer than the test: only the events decide
    starting = threading.Event()
    starting.set()
    synth, sink = FakeSynth(), FakeSink()
    session = make_session(
        FakeChat().enqueue("Too soon."),
        FakeDisplay(),
        transcriber=FakeTranscriber("capital of France?"),
        synthesizer=synth,
        sinks=[sink],
    )
    session.speech_starting = starting.is_set
    thread, outcome = in_thread(lambda: session.hear(loud(1.0), time.perf_counter()))  # type: ignore[arg-type,return-value]
    wait_until(lambda: synth.spoken == ["Too soon."])  # ready to play, and waiting
    time.sleep(0.1)
    assert sink.writes == 0
    if user_goes_on:
        assert session.take_back()
        assert finished(thread, outcome) is None and sink.writes == 0  # never heard, never kept
        assert session.conversation.turns == []
    else:
        starting.clear()  # it was not speech after all
        result = finished(thread, outcome)
        assert result is not None and sink.writes == 1


def test_speech_after_the_reply_has_sounded_does_not_take_the_turn_back():
    session = make_session(FakeChat(), FakeDisplay(), transcriber=HalfSeconds())
    turn = session._open(spoken=True)
    assert turn.first_sound() and not session.take_back()  # it has been heard: barge-in's business
    session._close(turn)
    typed = session._open()
    assert not session.take_back()  # a typed turn is not the start of what the user says next
    session._close(typed)


def test_a_segmenter_sees_real_chunks():
    # The listener hands the segmenter CHUNK-sample blocks (its VAD's window); a sanity check of the fake.
    seg = Segmenter(VadOptions(silence_ms=200), vad=energy_vad)
    found = feed_all(seg, np.concatenate([loud(0.5), np.zeros(16000, np.float32)]))
    assert len(found) == 1


def test_the_clock_starts_at_the_last_voiced_moment_not_at_the_endpoint():
    """Hands-free, a turn's timings count from the true end of speech; the wait for the pause to be
    long enough is its own timing (endpoint). Here the microphone's clock is audio time."""

    class AudioClockMic(FakeMic):
        def read(self, timeout: float = 0.1) -> np.ndarray | None:
            chunk = super().read(timeout)
            self.captured_at = self.position / 16000  # when this chunk's last sample was recorded
            return chunk

    speech_ends = 0.5 + 1.0
    mic = AudioClockMic(np.concatenate([np.zeros(8000, np.float32), loud(1.0)]))
    inbox = loops.Inbox()
    listener = loops.Listener(mic, VadOptions(silence_ms=500), inbox, clock=lambda: mic.captured_at)
    import talkgpt4all.audio.vad as vad

    listener._segmenter = vad.Segmenter(VadOptions(silence_ms=500), vad=energy_vad)
    listener.start()
    try:
        event = inbox.get()
    finally:
        listener.stop()
    assert isinstance(event, loops.Utterance)
    chunk = CHUNK / 16000
    assert speech_ends <= event.speech_end < speech_ends + chunk  # the chunk where the voice stopped
    assert event.endpoint is not None and 0.5 <= event.endpoint < 0.5 + 2 * chunk  # the pause it took


def test_a_signal_stops_the_turn_at_once_while_the_main_thread_is_busy_in_c():
    """Python runs a signal's handler in the main thread, between two steps of Python: while that thread
    is inside C (the model writing a token, here a long matrix product), a reply would play on. The
    signal watch stops the turn from its own thread the moment the signal arrives; the main thread's
    KeyboardInterrupt comes when it is back."""
    import signal

    stopped_at: list[float] = []
    watch = loops.SignalWatch(lambda: stopped_at.append(time.monotonic()) is None)
    a = np.random.default_rng(0).standard_normal((3000, 3000))
    sent: list[float] = []

    def ctrl_c() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    try:
        threading.Timer(0.2, ctrl_c).start()
        with pytest.raises(KeyboardInterrupt):
            for _ in range(20):  # the main thread in C, for a second or more at a time
                a @ a
        interrupted_at = time.monotonic()
    finally:
        watch.close()
    assert stopped_at and stopped_at[0] - sent[0] < 0.1, (stopped_at, sent)
    assert interrupted_at - sent[0] > stopped_at[0] - sent[0]  # the watch was first
    assert not [t for t in threading.enumerate() if t.name == "signals"]
