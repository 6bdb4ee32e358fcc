"""Each turn's language: heard or read from the script, asked for in the reply, spoken in the right voice,
and Chinese in the script the user wants."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clips import real_clips
from conftest import Ears, run_chat, wer
from fakes import FakeChat, FakeSynth, FakeTranscriber, make_session, settings
from talkgpt4all.audio import Audio, load_audio
from talkgpt4all.language import ChineseScript, answer_note, script_language, to_script
from talkgpt4all.stt import Transcript
from talkgpt4all.transcript import TranscriptWriter


def test_a_typed_line_s_script_gives_its_language():
    assert script_language("法国的首都是哪里？") == "zh"
    assert script_language("Paris, 巴黎") == "zh"
    assert script_language("こんにちは、元気ですか") == "ja"  # kana, even beside Han characters
    assert script_language("안녕하세요") == "ko"
    assert script_language("Where is Zürich?") is None


def test_the_answer_note_is_there_for_other_languages_and_for_english_after_them():
    assert answer_note("en", None, "simplified") is None and answer_note("en", "en", "simplified") is None
    assert answer_note("zh", "en", "simplified") == "请用简体中文回答。"
    assert answer_note("zh", "zh", "traditional") == "請用繁體中文回答。"
    assert answer_note("en", "zh", "simplified") == "Please answer in English."
    assert answer_note(None, "zh", "simplified") is None


class ObedientChat(FakeChat):
    """Answers in Chinese when told to, and in English otherwise."""

    def stream(self, messages, options) -> Iterator[str]:
        chinese = "请用简体中文回答" in messages[-1]["content"]
        self.enqueue("巴黎是法国的首都。" if chinese else "Paris is the capital of France.")
        yield from super().stream(messages, options)


class VoiceLog(FakeSynth):
    def __init__(self) -> None:
        super().__init__()
        self.languages: list[str | None] = []

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        self.languages.append(language)
        return super().synthesize(text, language)


def test_english_then_chinese_then_english_each_answered_and_voiced_in_its_language(tmp_path: Path):
    from fakes import FakeSink

    chat, voice = ObedientChat(), VoiceLog()
    log = tmp_path / "t.jsonl"
    session = make_session(chat, synthesizer=voice, sinks=[FakeSink()], transcript=TranscriptWriter(log))
    for line in ("What is the capital of France?", "法国的首都是哪里？", "And of Italy?"):
        session.reply(line, time.perf_counter())
    session.close()
    told = [call[-1]["content"] for call in chat.calls]
    assert told == [
        "What is the capital of France?",
        "法国的首都是哪里？\n\n(请用简体中文回答。)",
        "And of Italy?\n\n(Please answer in English.)",
    ]
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert [t["language"] for t in turns] == ["en", "zh", "en"]
    assert [t["reply"] for t in turns] == [
        "Paris is the capital of France.",
        "巴黎是法国的首都。",
        "Paris is the capital of France.",
    ]
    assert turns[1]["user"] == "法国的首都是哪里？"  # the transcript keeps what the user said
    assert voice.languages == ["en", "zh", "en"]  # each reply in its turn's voice
    # The history holds the messages as the model got them, so the next prompt matches its cache.
    assert session.conversation.turns[2]["content"] == told[1]


def test_a_spoken_chinese_turn_is_answered_in_chinese():
    chat = ObedientChat()
    session = make_session(chat, transcriber=FakeTranscriber("你好", language="zh"))
    result = session.hear(np.full(16000, 0.2, np.float32), time.perf_counter())
    assert result is not None and result.language == "zh" and result.reply == "巴黎是法国的首都。"


def test_language_pins_every_turn():
    chat = ObedientChat()
    session = make_session(chat, config=settings(stt={"language": "zh"}))
    session.reply("What is the capital of France?", time.perf_counter())
    assert chat.calls[0][-1]["content"].endswith("(请用简体中文回答。)")


def test_chinese_is_heard_in_the_script_asked_for():
    traditional = FakeTranscriber("對，這就是我，萬人敬仰的太乙真人。", language="zh")
    assert (
        ChineseScript(traditional, "simplified").transcribe(np.zeros(1)).text
        == "对，这就是我，万人敬仰的太乙真人。"
    )
    simplified = FakeTranscriber("开放时间是几点？", language="zh")
    assert ChineseScript(simplified, "traditional").transcribe(np.zeros(1)).text == "開放時間是幾點？"
    english = FakeTranscriber("Über 開放", language="en")  # only Chinese turns are converted
    assert ChineseScript(english, "simplified").transcribe(np.zeros(1)).text == "Über 開放"
    assert to_script("裡麵包", "simplified") == "里面包"  # by phrase, not character by character


@pytest.fixture(scope="module")
def base_in_simplified():
    from talkgpt4all.stt.faster_whisper import FasterWhisperTranscriber

    yield ChineseScript(FasterWhisperTranscriber(None), "simplified")


@pytest.mark.parametrize("name", ["f5-basic_ref_zh.wav", "audioeval-zh-pangrama.wav"])
def test_real_mandarin_comes_out_in_simplified_characters(base_in_simplified, name: str):
    """Whisper base writes both recordings in traditional characters (對,這就是我萬人...); the user
    reads simplified ones. The words themselves are judged in test_stt.py."""
    [(_, path, _, _)] = [c for c in real_clips("zh") if c[0] == name]
    heard: Transcript = base_in_simplified.transcribe(load_audio(path))
    assert heard.language == "zh"
    hanzi = [ch for ch in heard.text if "\u4e00" <= ch <= "\u9fff"]
    assert len(hanzi) >= 5, heard
    assert to_script(heard.text, "simplified") == heard.text, heard  # nothing left to simplify
    assert to_script(heard.text, "traditional") != heard.text  # and there was something to simplify


def test_typed_english_then_chinese_with_real_models(tmp_path: Path, ears: Ears):
    """The real program: an English line, then a Chinese one. Each turn's language is recorded, and the
    English reply, saved as audio, is heard back by Whisper as what was printed."""
    log, audio = tmp_path / "t.jsonl", tmp_path / "replies"
    run = run_chat(
        "--text",
        "--no-play",
        "--save-audio",
        str(audio),
        "--transcript",
        str(log),
        "--temperature",
        "0",
        "--seed",
        "1",
        "--max-tokens",
        "40",
        stdin="What is the capital of France?\n法国的首都是哪里？\n",
    )
    assert run.returncode == 0, run.stderr
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert [t["language"] for t in turns] == ["en", "zh"]
    english = turns[0]["reply"]
    heard = ears.hear(load_audio(audio / "reply-001.wav"))
    assert wer(english, heard) <= 0.35, (english, heard)


@pytest.mark.parametrize(
    ("env", "languages"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "en,zh"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins, and C names no language
        ({"LC_MESSAGES": "de_DE.UTF-8", "LANG": "en_US.UTF-8"}, "en,de"),
        ({"LANG": "Chinese (Simplified)_China.936"}, "en,zh"),  # Windows' names
    ],
)
def test_the_languages_heard_by_default_are_english_and_the_locale_s(env: dict[str, str], languages: str):
    from talkgpt4all.language import default_languages

    assert default_languages(env) == languages


def test_languages_on_the_command_line_and_in_the_config_file(tmp_path: Path):
    from talkgpt4all.language import allowed_languages
    from talkgpt4all.settings import SpeechToText

    run = run_chat("--languages", "EN, zh", "--print-config")
    assert run.returncode == 0 and 'languages = "en,zh"  # the command line' in run.stdout, run.stdout
    run = run_chat("--languages", "en,klingon", "--print-config")
    assert run.returncode == 2 and len(run.stderr_lines) == 1, run.stderr
    assert "'klingon' is not a language Whisper knows" in run.stderr, run.stderr
    run = run_chat("--languages", "en,chinese", "--print-config")
    assert run.returncode == 2 and "use its code, zh" in run.stderr, run.stderr
    config = tmp_path / "talk.toml"
    config.write_text('languages = "any"\n')
    run = run_chat("--config", str(config), "--print-config", env={"LANG": "zh_CN.UTF-8"})
    assert 'languages = "any"  # the config file' in run.stdout, run.stdout
    run = run_chat("--print-config", env={"LANG": "zh_CN.UTF-8", "LC_ALL": ""})
    assert 'languages = "en,zh"  # default' in run.stdout, run.stdout
    # --language pins one; any is no limit.
    assert SpeechToText(language="zh", languages="en").heard_languages == ("zh",)
    assert allowed_languages("any") is None


def test_a_spoken_turn_is_heard_in_the_user_s_language_through_the_program(tmp_path: Path):
    """espeak-ng's British "How many days are there in a week?" is Thai to Whisper base among all
    languages; by default (English, and the locale's) the turn is English, and answered as one."""
    import subprocess

    question = tmp_path / "q.wav"
    text = "How many days are there in a week?"
    subprocess.run(["espeak-ng", "-v", "en-gb", "-w", str(question), text], check=True)
    log = tmp_path / "t.jsonl"
    for languages, heard_as in (("en,zh", "en"), ("any", "th")):
        log.unlink(missing_ok=True)
        run = run_chat(
            "--input", str(question), "--languages", languages, "--no-play", "--transcript", str(log),
            "--max-tokens", "8", "--tts", "none",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        [turn] = [json.loads(line) for line in log.read_text().splitlines()]
        assert turn["language"] == heard_as, turn
    run = run_chat(
        "--input", str(question), "--no-play", "--transcript", str(log), "--max-tokens", "8", "--tts", "none",
        env={"LANG": "en_US.UTF-8", "LC_ALL": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(log.read_text().splitlines()[-1])["language"] == "en"
