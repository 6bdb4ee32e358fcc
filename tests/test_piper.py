"""--tts piper: neural voices by name, resolved like models (a path, models/, the Hugging Face cache, a
download from rhasspy/piper-voices, the starter voice), one per language when none is named."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_models import hub  # noqa: F401  (the stand-in Hub fixture)

from conftest import Ears, run_chat, wer
from fakes import FakeChat, FakeSink, make_session

piper = pytest.importorskip(
    "piper", reason="install the piper extra: pip install -e '.[piper]' (.ci/run does)"
)

from talkgpt4all.audio import load_audio  # noqa: E402
from talkgpt4all.tts import piper as piper_tts  # noqa: E402


def hear_back(audio, tmp_path: Path, ears: Ears) -> str:
    path = tmp_path / "said.wav"
    sf.write(path, audio.samples, audio.sample_rate)
    return ears.hear(load_audio(path))


def serve_voice(hub, name: str, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """The stand-in Hub serves the starter voice (joe) as the piper voice name; the environment that
    reaches it, with an empty Hugging Face cache."""
    starter = piper_tts.starter_voice()
    assert starter is not None
    where = piper_tts.hub_path(name)
    hub.files[f"rhasspy/piper-voices:{where}"] = starter.read_bytes()
    hub.files[f"rhasspy/piper-voices:{where}.json"] = starter.with_name(starter.name + ".json").read_bytes()
    return {
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }


def test_the_starter_voice_speaks_and_whisper_hears_it(tmp_path: Path, ears: Ears):
    said = "Good morning. The weather is sunny and warm today."
    audio = piper_tts.Piper().synthesize(said, "en")
    assert audio.sample_rate == 22050 and len(audio.samples) > audio.sample_rate
    assert wer(said, hear_back(audio, tmp_path, ears)) <= 0.2


def test_a_named_voice_is_downloaded_once_with_progress_and_spoken(hub, tmp_path: Path, ears: Ears):  # noqa: F811
    env = serve_voice(hub, "en_US-lessac-medium", tmp_path)  # joe, standing in for lessac
    replies = tmp_path / "replies"
    args = ("--text", "--tts", "piper", "--voice", "en_US-lessac-medium", "--no-play", "--temperature", "0")
    run = run_chat(*args, "--save-audio", str(replies), env=env, stdin="Hello!\n", stderr_tty=True)
    assert run.returncode == 0, run.stderr
    assert "downloading the piper voice en_US-lessac-medium" in run.stderr and "100%" in run.stderr
    printed = next(line for line in run.stdout.splitlines() if line.startswith("AI: "))[4:]
    assert wer(printed, ears.hear(load_audio(replies / "reply-001.wav"))) <= 0.35
    # The second time it comes from the cache, with the Hub gone.
    hub.files.clear()
    again = tmp_path / "again"
    run = run_chat(*args, "--save-audio", str(again), env={**env, "HF_HUB_OFFLINE": "1"}, stdin="Hello!\n")
    assert run.returncode == 0 and "downloading" not in run.stderr, run.stderr
    assert (again / "reply-001.wav").is_file()


def test_a_named_voice_that_cannot_be_had_is_one_line(tmp_path: Path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    # A voice is needed only when something is to be voiced: here, replies saved as audio.
    args = ("--text", "--tts", "piper", "--no-play", "--save-audio", str(tmp_path / "replies"))
    run = run_chat(*args, "--voice", "zh_CN-huayan-medium", env=env, stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "cannot download the piper voice zh_CN-huayan-medium" in run.stderr and "unreachable" in run.stderr
    run = run_chat(*args, "--voice", "joe", stdin="hi\n")
    assert run.returncode == 1 and "not a piper voice name" in run.stderr_lines[0], run.stderr


def test_each_language_gets_its_voice_and_one_without_a_voice_is_shown_not_spoken(monkeypatch, caplog):
    """No Chinese voice can be had here: the Chinese reply is printed in full, not voiced in English or
    by espeak, and one line says how to get the voice. The English reply is spoken."""
    real = piper_tts.resolve_voice
    monkeypatch.setattr(
        piper_tts,
        "resolve_voice",
        lambda name, explicit: None if name.startswith("zh") else real(name, explicit=explicit),
    )
    chat, sink = FakeChat().enqueue("巴黎是法国的首都。", "Paris is the capital."), FakeSink()
    session = make_session(chat, synthesizer=piper_tts.Piper(), sinks=[sink])
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        chinese = session.reply("法国的首都是哪里？", time.perf_counter())
        english = session.reply("And in English?", time.perf_counter())
    assert chinese.reply == "巴黎是法国的首都。" and chinese.timings.first_audio is None
    assert not any(e.startswith("write") for e in sink.events[: sink.events.index("end")])
    assert english.timings.first_audio is not None
    warnings = [r.getMessage() for r in caplog.records if "no piper voice" in r.getMessage()]
    assert len(warnings) == 1 and "zh_CN-huayan-medium" in warnings[0], warnings


def test_list_voices_names_each_engine_s_voices_with_their_language():
    run = run_chat("--list-voices")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.split()[:2] == ["en_US-joe-medium", "en_US"] for line in lines if line.strip())
    assert any(line.split()[-1:] == ["cmn"] for line in lines)  # espeak's Mandarin
    assert "zh_CN-huayan-medium (zh)" in run.stdout  # what a Chinese reply would fetch


class Spy:
    """Stands in for espeak-ng in --tts auto, recording what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str | None]] = []

    def synthesize(self, text: str, language: str | None = None):
        from talkgpt4all.audio import Audio

        self.said.append((text, language))
        return Audio(np.ones(100, np.float32) * 0.1, 22050)


def no_voice_for(*languages: str, monkeypatch) -> None:
    real = piper_tts.resolve_voice
    monkeypatch.setattr(
        piper_tts,
        "resolve_voice",
        lambda name, explicit: None if name[:2] in languages else real(name, explicit=explicit),
    )


def linux_default(*without: str, monkeypatch) -> tuple[object, Spy]:
    """--tts auto with no piper voice for these languages, and a Spy for espeak-ng."""
    from talkgpt4all.tts.auto import VoicePerLanguage

    no_voice_for(*without, monkeypatch=monkeypatch)
    auto = VoicePerLanguage()
    auto.espeak = espeak = Spy()  # type: ignore[assignment]
    return auto, espeak


def test_linux_default_speaks_with_piper_where_it_has_a_voice_and_espeak_elsewhere(monkeypatch, caplog):
    auto, espeak = linux_default("de", monkeypatch=monkeypatch)
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        english = auto.synthesize("Good morning.", "en")
        german = auto.synthesize("Guten Morgen.", "de")
    assert len(english.samples) > english.sample_rate // 4  # joe said it: espeak was not asked
    assert espeak.said == [("Guten Morgen.", "de")] and len(german.samples) == 100
    assert not caplog.records  # espeak speaking German is no news


def test_linux_default_never_hands_chinese_to_espeak_and_says_once_how_to_get_a_voice(monkeypatch, caplog):
    auto, espeak = linux_default("zh", monkeypatch=monkeypatch)
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        first = auto.synthesize("你好。", "zh")
        second = auto.synthesize("再见。", None)  # the script says Chinese when no language is given
    assert len(first.samples) == len(second.samples) == 0 and espeak.said == []
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1, notes
    assert "zh_CN-huayan-medium" in notes[0] and "--tts espeak" in notes[0] and "not spoken" in notes[0]


def test_linux_default_without_piper_uses_espeak_and_says_how_to_get_a_chinese_voice(monkeypatch, caplog):
    from talkgpt4all.errors import MissingDependencyError
    from talkgpt4all.tts import auto as auto_tts

    def not_installed(*args):
        raise MissingDependencyError("--tts piper needs the piper-tts package")

    monkeypatch.setattr(piper_tts, "Piper", not_installed)
    auto = auto_tts.VoicePerLanguage()
    assert auto.piper is None
    auto.espeak = espeak = Spy()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        auto.synthesize("Hello.", "en")
        assert len(auto.synthesize("你好。", "zh").samples) == 0
    assert espeak.said == [("Hello.", "en")]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "pip install -e '.[piper]'" in notes[0], notes


def test_a_named_voice_picks_its_engine_under_the_linux_default():
    from talkgpt4all.settings import Speech
    from talkgpt4all.tts import make_synthesizer
    from talkgpt4all.tts.commands import Espeak

    assert isinstance(make_synthesizer("auto", Speech(voice="en-us")), Espeak)
    assert isinstance(make_synthesizer("auto", Speech(voice="en_US-joe-medium")), piper_tts.Piper)


def test_linux_default_fetches_the_chinese_voice_when_the_user_turns_to_chinese(
    hub,  # noqa: F811
    tmp_path: Path,
    ears: Ears,
):
    """Out of the box on Linux: an English turn in the starter voice, then a Chinese turn, for which
    zh_CN-huayan-medium is downloaded once (from the stand-in Hub, where joe plays its part)."""
    env = serve_voice(hub, "zh_CN-huayan-medium", tmp_path)
    replies = tmp_path / "replies"
    args = ("--platform", "linux", "--text", "--no-play", "--save-audio", str(replies), "--max-tokens", "24")
    run = run_chat(*args, env=env, stdin="Hello!\n你好！\n")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("downloading the piper voice zh_CN-huayan-medium") == 1, run.stderr
    english = next(line for line in run.stdout.splitlines() if line.startswith("AI: "))[4:]
    assert wer(english, ears.hear(load_audio(replies / "reply-001.wav"))) <= 0.35
    assert len(load_audio(replies / "reply-002.wav")) > 0.3 * 16000  # the Chinese reply was voiced
