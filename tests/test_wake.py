"""The wake word: the phrase found in transcripts, the gate, the keyword model on real speech (both of
its runtimes), and the hands-free loop that only answers what is addressed to it."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from test_loops import (
    FakeMic,
    GatedChat,
    Keys,
    energy_vad,
    finished,
    in_thread,
    listener_threads,
    loud,
    wait_until,
)

import talkgpt4all.audio.vad as vad
from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, FakeTranscriber, make_session, settings
from talkgpt4all import loops
from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.audio.vad import VadOptions
from talkgpt4all.errors import ExitCode, ModelError
from talkgpt4all.stt import Transcript
from talkgpt4all.wake import (
    AFTER_WAKE_S,
    BUILTIN,
    Gate,
    Wake,
    chime,
    find_phrase,
    open_spotter,
    resolve_keyword_model,
    strip_phrase,
)

# ------------------------------------------------------------------ the phrase in a transcript


@pytest.mark.parametrize(
    ("text", "phrase", "rest"),
    [
        ("Hey Jarvis, what time is it?", "hey jarvis", "What time is it?"),  # as if said alone
        ("Hey, Jarvis! What time is it?", "hey jarvis", "What time is it?"),
        ("hey travis what time is it", "hey jarvis", "what time is it"),  # Whisper's spelling
        ("Hey Jarvis.", "hey jarvis", ""),
        ("What time is it, computer?", "computer", "What time is it"),
        ("COMPUTER. Tell me a joke.", "computer", "Tell me a joke."),
        ("小助手，现在几点？", "小助手", "现在几点？"),
        ("小助手現在幾點", "小助手", "現在幾點"),  # Whisper's traditional characters, kept as written
        (
            "Ｈｅｙ Ｊａｒｖｉｓ，ｗｈａｔ ｔｉｍｅ？",
            "hey jarvis",
            "Ｗｈａｔ ｔｉｍｅ？",
        ),  # full-width, kept so
    ],
)
def test_the_wake_phrase_is_found_however_whisper_writes_it_and_taken_out(text, phrase, rest):
    assert strip_phrase(text, phrase) == rest


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("What time is it?", "hey jarvis"),
        ("Hey, what time is it?", "hey jarvis"),
        ("The weather today is nice.", "computer"),
        ("今天天气很好。", "小助手"),
        ("", "computer"),
    ],
)
def test_speech_without_the_wake_phrase_is_not_for_the_assistant(text, phrase):
    assert find_phrase(text, phrase) is None
    assert strip_phrase(text, phrase) is None


# ------------------------------------------------------------------ the gate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_opens_for_the_request_after_the_wake_word_and_for_the_follow_up_after_a_reply():
    clock = Clock()
    gate = Gate(follow_up=5.0, clock=clock)
    assert not gate.is_open()
    assert gate.wake() is True  # it was closed: the chime plays
    assert gate.wake() is False  # already open: no second chime
    clock.now += AFTER_WAKE_S - 0.1
    assert gate.is_open()
    gate.replied()
    clock.now += 4.9
    assert gate.is_open() and 0 < gate.left() <= 0.1 + 1e-9
    clock.now += 0.2
    assert not gate.is_open()


def test_no_follow_up_means_every_question_needs_the_wake_word_but_a_request_after_it_does_not():
    clock = Clock()
    gate = Gate(follow_up=0.0, clock=clock)
    gate.wake()
    clock.now += AFTER_WAKE_S / 2
    assert gate.is_open()  # "Hey Jarvis" ... "what time is it"
    gate.replied()
    assert not gate.is_open()


def test_a_transcript_is_taken_when_addressed_or_when_it_says_the_phrase_which_wakes_once():
    woken: list[int] = []
    wake = Wake("computer", Gate(follow_up=5.0, clock=Clock()), on_wake=lambda: woken.append(1))
    assert wake.accept("What time is it?", addressed=False) is None
    assert wake.accept("What time is it?", addressed=True) == "What time is it?"
    assert woken == []
    assert wake.peek("Computer, what time is it?", addressed=False) == "What time is it?"
    assert woken == []  # peeking (the work begun in a pause) does not wake it
    assert wake.accept("Computer, what time is it?", addressed=False) == "What time is it?"
    assert woken == [1]
    assert wake.accept("And tomorrow?", addressed=False) == "And tomorrow?"  # the gate is open now
    assert wake.waiting().startswith("Listening (say your request, ")


def test_with_a_keyword_model_the_words_do_not_wake_it_again():
    """The keyword model woke it when it heard the word; the same word in the turn's transcript, after a
    long request (the gate closed meanwhile), is only taken out: no second chime."""
    woken: list[int] = []
    wake = Wake("hey jarvis", Gate(clock=Clock()), MarkSpotter(), on_wake=lambda: woken.append(1))  # type: ignore[arg-type]
    assert wake.accept("Hey Jarvis, what time is it?", addressed=True) == "What time is it?"
    assert woken == [] and not wake.gate.is_open()


def test_the_chime_is_short_and_soft():
    sound = chime(22050)
    assert 0.1 < sound.seconds < 0.3 and float(np.abs(sound.samples).max()) <= 0.3


# ------------------------------------------------------------------ the keyword model, on real speech


def _piper(text: str, tmp_path: Path, name: str) -> np.ndarray:
    from test_turn import piper_says

    audio = piper_says(text, tmp_path / f"{name}.wav")
    half = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([half, audio, half, half])


def _heard(spotter, audio: np.ndarray) -> tuple[list[float], list[float]]:
    """When (seconds into the audio) the wake word was heard, and the probability after each piece."""
    hits, probabilities = [], []
    for start in range(0, len(audio) - 512 + 1, 512):
        if spotter.feed(audio[start : start + 512]):
            hits.append((start + 512) / SAMPLE_RATE)
        probabilities.append(spotter.last)
    return hits, probabilities


@pytest.fixture(scope="module")
def jarvis_speech(tmp_path_factory) -> dict[str, np.ndarray]:
    pytest.importorskip("pymicro_wakeword", reason="needs the wake extra: pip install -e '.[wake]'")
    folder = tmp_path_factory.mktemp("wake")
    texts = {
        "one breath": "Hey Jarvis, what time is it?",
        "alone": "Hey Jarvis.",
        "question": "What time is it?",
        "other name": "Okay Nabu, what time is it?",
    }
    return {name: _piper(text, folder, name.replace(" ", "-")) for name, text in texts.items()}


def test_the_keyword_model_hears_hey_jarvis_once_and_nothing_in_a_question_without_it(jarvis_speech):
    for name in ("one breath", "alone"):
        hits, _ = _heard(open_spotter("hey_jarvis"), jarvis_speech[name])
        assert len(hits) == 1, (name, hits)
        # heard as the word ends: within the first 1.2 s (half a second of silence, then "hey jarvis")
        assert 0.5 < hits[0] < 1.6, (name, hits)
    for name in ("question", "other name"):
        hits, probabilities = _heard(open_spotter("hey_jarvis"), jarvis_speech[name])
        assert hits == [] and max(probabilities) < 0.5, name
    # and the other built-in model hears its own word
    hits, _ = _heard(open_spotter("okay_nabu"), jarvis_speech["other name"])
    assert len(hits) == 1


def test_litert_the_macos_runtime_hears_the_same_as_pymicro_wakewords_library(jarvis_speech):
    """macOS has no pymicro-wakeword wheel: there the same model files run on LiteRT. Both runtimes,
    side by side on the same speech, give the same probabilities (to a quantization step or two) and
    hear the word at the same moment."""
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert (the test extra has it)")
    for name, audio in jarvis_speech.items():
        c_hits, c_probabilities = _heard(open_spotter("hey_jarvis", "tflite"), audio)
        lite = open_spotter("hey_jarvis", "litert")
        assert lite.runtime.name == "LiteRT (ai-edge-litert)"
        lite_hits, lite_probabilities = _heard(lite, audio)
        assert lite_hits == c_hits, name
        assert np.max(np.abs(np.subtract(c_probabilities, lite_probabilities))) < 0.02, name


def test_a_wake_word_model_that_does_not_exist_is_one_error_naming_the_built_in_ones(tmp_path):
    for spec in ("hey_siri", str(tmp_path / "missing.json"), str(tmp_path / "missing.tflite")):
        with pytest.raises(ModelError) as raised:
            resolve_keyword_model(spec)
        assert all(name in str(raised.value) for name in BUILTIN) and "\n" not in str(raised.value)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ModelError, match="cannot read the wake word model"):
        resolve_keyword_model(str(broken))


def test_a_custom_model_is_named_by_its_json_path(tmp_path):
    from talkgpt4all.wake import packaged_models

    folder = packaged_models()
    if folder is None:
        pytest.skip("needs the wake extra: pip install -e '.[wake]'")
    for ext in (".json", ".tflite"):
        (tmp_path / f"mine{ext}").write_bytes((folder / f"hey_jarvis{ext}").read_bytes())
    text = (tmp_path / "mine.json").read_text().replace("hey_jarvis.tflite", "mine.tflite")
    (tmp_path / "mine.json").write_text(text)
    model = resolve_keyword_model(str(tmp_path / "mine.tflite"))  # its .json beside it is read
    assert model.path == tmp_path / "mine.tflite" and model.phrase == "hey jarvis"


def test_on_a_machine_without_pymicro_wakeword_the_models_come_from_its_wheel(tmp_path, monkeypatch):
    """macOS: the built-in models are taken out of pymicro-wakeword's wheel (fetched with pip, not
    installed), once, into the cache. Here the wheel comes from a local folder that stands in for PyPI."""
    import talkgpt4all.wake as wake

    folder = wake.packaged_models()
    if folder is None:
        pytest.skip("needs the wake extra: pip install -e '.[wake]'")
    index = tmp_path / "index"
    index.mkdir()
    name = "pymicro_wakeword-2.5.0-py3-none-manylinux_2_35_x86_64.whl"
    with zipfile.ZipFile(index / name, "w") as wheel:
        for model in BUILTIN:
            for ext in (".json", ".tflite"):
                wheel.write(folder / f"{model}{ext}", f"pymicro_wakeword/models/{model}{ext}")
        info = "pymicro_wakeword-2.5.0.dist-info"
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: pymicro-wakeword\nVersion: 2.5.0\n")
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-manylinux_2_35_x86_64\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    for key, value in {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(index),
        "TALKGPT4ALL_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(wake, "packaged_models", lambda: None)  # as on macOS: not installed
    monkeypatch.setattr(wake, "MODELS_DIR", tmp_path / "models")
    model = resolve_keyword_model("Hey Jarvis")
    assert model.path == tmp_path / "cache" / "wake-words" / "hey_jarvis.tflite"
    assert model.path.read_bytes() == (folder / "hey_jarvis.tflite").read_bytes()
    assert not list(model.path.parent.glob("*.partial"))


# ------------------------------------------------------------------ the loop: only what is addressed


class MarkSpotter:
    """A keyword model that hears 'the wake word' in a piece louder than 0.8 (once per such run)."""

    def __init__(self) -> None:
        self.was_loud = False

    def feed(self, chunk: np.ndarray) -> bool:
        loud_now = float(np.abs(chunk).max()) > 0.8
        heard, self.was_loud = loud_now and not self.was_loud, loud_now
        return heard


def wake_word(seconds: float = 0.3) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 3) * 0.9).astype(np.float32)


class Scripted(FakeTranscriber):
    """Hears the next of its texts at each call (the last one again when they run out)."""

    def __init__(self, *texts: str) -> None:
        super().__init__(texts[0])
        self.texts = list(texts)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.calls += 1
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return Transcript(text, "en")


def with_energy_vad(monkeypatch) -> None:
    original = vad.Segmenter
    monkeypatch.setattr(vad, "Segmenter", lambda options, **hooks: original(options, vad=energy_vad, **hooks))


def run_hands_free(session, mic, wake, monkeypatch, chimes: list[int], barge_in: bool = False):
    with_energy_vad(monkeypatch)
    keys, err = Keys(), io.StringIO()
    session.wake = wake
    thread, outcome = in_thread(
        lambda: loops.hands_free(
            session,
            mic,
            VadOptions(silence_ms=200),
            keys.stream,
            err,
            barge_in=barge_in,
            wake=wake,
            chime=lambda: chimes.append(1),
        )
    )
    return keys, err, thread, outcome


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def test_with_a_wake_word_speech_without_it_is_never_transcribed_and_with_it_is_a_turn_without_it(
    monkeypatch,
):
    chat, display, chimes = FakeChat().enqueue("It is noon.", "Ha."), FakeDisplay(), []
    # What Whisper would hear in each utterance it is given, in turn.
    transcriber = Scripted("Hey Jarvis, what time is it?", "Tell me a joke.")
    session = make_session(chat, display, transcriber=transcriber)
    wake = Wake("hey jarvis", Gate(follow_up=0.0), MarkSpotter())  # type: ignore[arg-type]
    mic = FakeMic(np.concatenate([silence(0.5), loud(1.0), silence(1.0), wake_word(), loud(0.8)]))
    keys, err, thread, outcome = run_hands_free(session, mic, wake, monkeypatch, chimes)
    wait_until(lambda: "AI: It is noon." in display.lines)
    wait_until(lambda: mic.position > len(mic.audio))
    keys.ctrl_d()  # after what was heard: the loop takes it last
    assert finished(thread, outcome) == ExitCode.OK
    # The first utterance (no wake word) was never transcribed: the one transcription is the turn's.
    assert transcriber.calls == 1
    [call] = chat.calls
    assert call[-1]["content"] == "What time is it?"
    assert display.lines[0] == "You: What time is it?" and "Didn't catch that" not in "".join(display.lines)
    assert chimes == [1]
    assert "Say 'hey jarvis'" in err.getvalue()
    assert listener_threads() == []


def test_waiting_for_the_wake_word_runs_no_voice_detector_and_the_request_keeps_its_start(monkeypatch):
    """Idle with --wake, only the keyword model hears the microphone: the voice detector and the
    segmenter rest. When the word is heard, the last seconds are gone through at once, so "Hey Jarvis,
    what time is it" in one breath is one turn from its first sound."""
    chat, display, chimes = FakeChat().enqueue("It is noon."), FakeDisplay(), []

    class Heard(Scripted):
        lengths: ClassVar[list[int]] = []

        def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
            self.lengths.append(len(audio))
            return super().transcribe(audio, language)

    transcriber = Heard("Hey Jarvis, what time is it?")
    session = make_session(chat, display, transcriber=transcriber)
    wake = Wake("hey jarvis", Gate(follow_up=0.0), MarkSpotter())  # type: ignore[arg-type]
    before = np.concatenate([silence(2.0), loud(1.0), silence(1.5)])  # speech without the wake word
    mic = FakeMic(np.concatenate([before, loud(0.5), wake_word(), loud(0.8)]))
    calls: list[int] = []

    def counting_vad(chunk: np.ndarray) -> float:
        calls.append(mic.position)
        return energy_vad(chunk)

    original = vad.Segmenter
    monkeypatch.setattr(
        vad, "Segmenter", lambda options, **hooks: original(options, vad=counting_vad, **hooks)
    )
    keys, err = Keys(), io.StringIO()
    session.wake = wake
    thread, outcome = in_thread(
        lambda: loops.hands_free(
            session,
            mic,
            VadOptions(silence_ms=200),
            keys.stream,
            err,
            wake=wake,
            chime=lambda: chimes.append(1),
        )
    )
    wait_until(lambda: "AI: It is noon." in display.lines)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    # Before the word, nothing ran the voice detector but the burst at the word (that read the chunks
    # already read, at one position).
    while_waiting = [at for at in calls if at <= len(before) + len(loud(0.5))]
    assert len(set(while_waiting)) <= 1
    # The turn holds the speech from before the word: its first half second, the word, the question.
    assert transcriber.lengths[0] >= len(loud(0.5)) + len(wake_word()) + len(loud(0.8))
    assert [call[-1]["content"] for call in chat.calls] == ["What time is it?"]


def test_a_follow_up_inside_the_window_needs_no_wake_word_and_one_after_it_is_not_heard(monkeypatch):
    chat, display, chimes = FakeChat().enqueue("It is noon.", "It is Monday.", "Ha."), FakeDisplay(), []
    # (were the late follow-up transcribed, it would take "Tell me a joke.", and the last turn another)
    transcriber = Scripted(
        "Hey Jarvis, what time is it?", "And the day?", "Tell me a joke.", "Tell me a story."
    )
    session = make_session(chat, display, transcriber=transcriber)
    wake = Wake("hey jarvis", Gate(follow_up=1.5), MarkSpotter())  # type: ignore[arg-type]
    mic = FakeMic(np.concatenate([silence(0.3), wake_word(), loud(0.6)]))

    def say(*pieces: np.ndarray) -> None:  # from now on: the microphone has read its script, and silence
        mic.audio = np.concatenate([np.zeros(mic.position, np.float32), silence(0.3), *pieces])

    keys, err, thread, outcome = run_hands_free(session, mic, wake, monkeypatch, chimes)
    wait_until(lambda: "AI: It is noon." in display.lines)
    wait_until(lambda: "Listening (follow-up" in err.getvalue())
    say(loud(0.6))  # a follow-up, at once
    wait_until(lambda: "AI: It is Monday." in display.lines)
    assert chat.calls[1][-1]["content"] == "And the day?"
    wait_until(lambda: not wake.gate.is_open(), timeout=5)
    say(loud(0.6), silence(1.0), wake_word(), loud(0.6))  # too late; then the wake word, and a question
    wait_until(lambda: "AI: Ha." in display.lines)
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert transcriber.calls == 3  # the one after the window was never transcribed
    assert [call[-1]["content"] for call in chat.calls] == [
        "What time is it?",
        "And the day?",
        "Tell me a joke.",
    ]
    assert chimes == [1, 1]


def test_with_a_wake_phrase_the_transcript_decides_and_the_phrase_alone_waits_for_the_request(monkeypatch):
    """--wake-phrase: every utterance is transcribed. Without the phrase: no turn, no trace. The phrase
    alone wakes it (the chime), and the request that follows is the turn."""
    chat, display, chimes = FakeChat().enqueue("It is noon."), FakeDisplay(), []
    transcriber = Scripted("The weather is nice today.", "Computer.", "What time is it?")
    session = make_session(chat, display, transcriber=transcriber)
    wake = Wake("computer", Gate(follow_up=0.0))
    audio = [silence(0.3), loud(0.8), silence(1.0), loud(0.5), silence(1.0), loud(0.8)]
    mic = FakeMic(np.concatenate(audio))
    keys, err, thread, outcome = run_hands_free(session, mic, wake, monkeypatch, chimes)
    wait_until(lambda: "AI: It is noon." in display.lines)
    assert [call[-1]["content"] for call in chat.calls] == ["What time is it?"]
    assert err.getvalue().count("Thinking…") == 1  # speech not for it was transcribed quietly
    assert display.lines[0] == "You: What time is it?"
    assert chimes == [1]
    assert session.conversation.messages[1:] == [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "It is noon."},
    ]
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--wake", "hey_jarvis"], "--wake is for hands-free listening: add --vad"),
        (["--vad", "--wake", "hey_jarvis", "--wake-phrase", "computer"], "use one"),
        (["--vad", "--follow-up", "5"], "--follow-up is about the wake word"),
        (["--vad", "--wake", "hey_jarvis", "--follow-up", "-1"], "too small"),
        (["--vad", "--wake-phrase", "!!!"], "has no words"),
    ],
)
def test_bad_wake_flags_are_one_line_and_exit_2(args, says):
    from conftest import run_chat

    run = run_chat(*args, "--no-play", timeout=60)
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert says in run.stderr and len(run.stderr.strip().splitlines()) <= 2, run.stderr


def test_a_wake_word_model_that_is_not_there_is_one_line_naming_the_built_in_ones():
    from conftest import run_chat

    run = run_chat("--vad", "--wake", "hey_siri", "--no-play", "--tts", "none", timeout=300)
    assert run.returncode == ExitCode.ERROR and "Traceback" not in run.stderr
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "hey_jarvis" in line and "okay_nabu" in line


def test_talking_over_a_reply_needs_no_wake_word(monkeypatch):
    """Barge-in: the gate is closed (it opens for no time at all here), yet speech over the reply stops it
    and is the next turn."""
    import talkgpt4all.wake

    monkeypatch.setattr(talkgpt4all.wake, "AFTER_WAKE_S", 0.0)
    chat, display, chimes = GatedChat(), FakeDisplay(), []
    chat.enqueue("Paris.")
    session = make_session(
        chat,
        display,
        transcriber=Scripted("Hey Jarvis, tell me a story.", "What is the capital of France?"),
        synthesizer=FakeSynth(),
        sinks=[FakeSink(play_seconds=30)],
    )
    wake = Wake("hey jarvis", Gate(follow_up=0.0), MarkSpotter())  # type: ignore[arg-type]
    mic = FakeMic(np.concatenate([silence(0.3), wake_word(), loud(0.6)]))
    keys, _, thread, outcome = run_hands_free(session, mic, wake, monkeypatch, chimes, barge_in=True)
    assert chat.streaming.wait(10)
    wait_until(session.reply_sounded)  # (before its first sound, speech would be the user going on)
    assert not wake.gate.is_open()
    mic.audio = np.concatenate([np.zeros(mic.position, np.float32), silence(0.3), loud(0.6)])
    wait_until(lambda: len(display.lines) >= 3)  # the next turn has begun
    keys.ctrl_d()
    assert finished(thread, outcome) == ExitCode.OK
    assert display.lines[1].endswith("[interrupted]"), display.lines
    assert display.lines[2] == "You: What is the capital of France?", display.lines


# ------------------------------------------------------------------ a Chinese wake phrase, real speech


def test_a_chinese_wake_phrase_on_real_mandarin_speech_heard_by_whisper():
    """--wake-phrase 太乙真人 on F5-TTS's real Mandarin clip ("对，这就是我，万人敬仰的太乙真人。"), through
    Whisper base: the turn is the clip without the phrase (Whisper writes 太以真人, and it is found all
    the same). Another Mandarin clip, without it, is no turn and never reaches the model."""
    from clips import real_clips
    from talkgpt4all.audio import load_audio
    from talkgpt4all.language import ChineseScript
    from talkgpt4all.stt.faster_whisper import FasterWhisperTranscriber

    clips = {name: path for name, path, _, _ in real_clips("zh")}
    chat, display = FakeChat().enqueue("你好。"), FakeDisplay()
    session = make_session(
        chat,
        display,
        transcriber=ChineseScript(FasterWhisperTranscriber(None), "simplified"),
        config=settings(stt={"languages": "en,zh"}, io={"text": True}),
    )
    session.wake = Wake("太乙真人", Gate(follow_up=0.0))
    assert (
        session.hear(load_audio(clips["audioeval-zh-jishu.wav"]), time.perf_counter(), addressed=False)
        is None
    )
    assert chat.calls == [] and display.lines == []
    result = session.hear(load_audio(clips["f5-basic_ref_zh.wav"]), time.perf_counter(), addressed=False)
    assert result is not None and result.language == "zh"
    assert "真人" not in result.user and "万人" in result.user and result.user.startswith("对"), result.user
    assert chat.calls[0][-1]["content"].startswith(result.user)


def test_the_config_file_knows_the_wake_settings_and_checks_them(tmp_path):
    from conftest import run_chat

    config = tmp_path / "talk.toml"
    config.write_text('vad = true\nwake = "hey_jarvis"\nfollow-up = 3\nno-chime = true\n')
    run = run_chat("--config", str(config), "--print-config", timeout=60)
    assert run.returncode == ExitCode.OK, run.stderr
    shown = {line.split(" = ")[0]: line for line in run.stdout.splitlines() if " = " in line}
    assert shown["wake"] == 'wake = "hey_jarvis"  # the config file'
    assert shown["follow-up"] == "follow-up = 3.0  # the config file"
    assert shown["no-chime"] == "no-chime = true  # the config file"
    config.write_text('vad = true\nwake-phrase = "computer"\nfollow-up = -2\n')
    run = run_chat("--config", str(config), "--print-config", timeout=60)
    assert run.returncode == ExitCode.USAGE and "follow-up" in run.stderr and "too small" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_without_the_wake_extra_one_line_says_what_to_install_and_nothing_is_fetched(monkeypatch):
    import talkgpt4all.wake as wake
    from talkgpt4all.errors import MissingDependencyError

    monkeypatch.setattr(wake, "PACKAGES", {"tflite": "no_such_module_a", "litert": "no_such_module_b"})
    monkeypatch.setattr(wake, "fetch_builtin_models", lambda: pytest.fail("a model was fetched"))
    monkeypatch.setattr(wake.sys, "platform", "linux")
    with pytest.raises(MissingDependencyError) as raised:
        open_spotter("hey_jarvis")
    assert (
        str(raised.value) == '--wake needs pymicro-wakeword: install the wake extra, pip install -e ".[wake]"'
    )
    monkeypatch.setattr(wake.sys, "platform", "darwin")
    with pytest.raises(MissingDependencyError, match="--wake needs ai-edge-litert"):
        open_spotter("hey_jarvis")
