"""The system speech commands pick a voice for the reply's language, and say so when theirs is poor."""

from __future__ import annotations


def test_espeak_says_once_that_its_mandarin_is_poor_and_how_to_get_a_better_voice(caplog):
    import logging

    from talkgpt4all.tts.commands import Espeak

    espeak = Espeak()
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        espeak.synthesize("你好。", "zh")
        espeak.synthesize("再见。", "zh")
        espeak.synthesize("Hello.", "en")
    notes = [r.getMessage() for r in caplog.records if "Mandarin" in r.getMessage()]
    assert len(notes) == 1 and "--tts piper" in notes[0], notes


def test_say_picks_the_mandarin_voice_for_a_chinese_reply(tmp_path, monkeypatch):
    """A stand-in `say` on PATH records its arguments and writes a short AIFF, as macOS's does."""
    import stat
    import sys

    log = tmp_path / "argv.txt"
    fake = tmp_path / "say"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy, soundfile\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "out = sys.argv[sys.argv.index('-o') + 1]\n"
        "soundfile.write(out, numpy.zeros(1600, 'float32'), 16000, format='AIFF')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    from talkgpt4all.tts.commands import Say

    Say().synthesize("你好。", "zh")
    Say().synthesize("Hello.", "en")
    Say(voice="Samantha").synthesize("你好。", "zh")  # a voice the user named is never replaced
    calls = log.read_text().splitlines()
    assert "-v Tingting" in calls[0] and "-v" not in calls[1] and "-v Samantha" in calls[2], calls


WSAY_VOICES = """1 : Microsoft David Desktop - English (United States)
2 : Microsoft Zira Desktop - English (United States)
3 : Microsoft Huihui Desktop - Chinese (Simplified)

"""


def fake_wsay(tmp_path, monkeypatch, voices: str = WSAY_VOICES):
    """A stand-in wsay on PATH: lists its voices as wsay does, records each call's arguments and the
    text it was given, and writes a short WAV to -o."""
    import os
    import stat
    import sys

    calls = tmp_path / "calls.txt"
    fake = tmp_path / "wsay"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy, soundfile\n"
        "args = sys.argv[1:]\n"
        "if args == ['--list_voices']:\n"
        f"    print({voices!r}, end='')\n"
        "    sys.exit(0)\n"
        "text = open(args[args.index('-i') + 1], encoding='utf-8').read()\n"
        f"open({str(calls)!r}, 'a', encoding='utf-8').write(' '.join(args) + ' | ' + text + '\\n')\n"
        "soundfile.write(args[args.index('-o') + 1], numpy.zeros(1600, 'float32'), 16000)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr("talkgpt4all.tts.commands.BIN_DIR", tmp_path / "no-bin")
    return calls


def _voice(call: str) -> str | None:
    args = call.split(" | ")[0].split()
    return args[args.index("-v") + 1] if "-v" in args else None


def test_wsay_picks_huihui_for_a_chinese_reply_and_takes_a_voice_by_name(tmp_path, monkeypatch):
    calls = fake_wsay(tmp_path, monkeypatch)
    from talkgpt4all.tts.commands import Wsay

    Wsay().synthesize("你好。", "zh")
    Wsay().synthesize("-v 1 <silence msec='9'/> Hello.", "en")
    Wsay(voice="zira").synthesize("你好。", "zh")  # a voice the user named is never replaced
    said = calls.read_text(encoding="utf-8").splitlines()
    assert [_voice(c) for c in said] == ["3", None, "2"], said
    # The reply goes in as a file, read as plain text: never an option, never SAPI markup.
    assert all("--nospeechxml" in c for c in said)
    assert said[1].split(" | ")[1] == "-v 1 <silence msec='9'/> Hello."


def test_wsay_without_a_chinese_voice_says_once_how_to_get_one(tmp_path, monkeypatch, caplog):
    import logging

    calls = fake_wsay(tmp_path, monkeypatch, voices="1 : Microsoft David Desktop - English (United States)\n")
    from talkgpt4all.tts.commands import Wsay

    wsay = Wsay()
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        wsay.synthesize("你好。", "zh")
        wsay.synthesize("再见。", "zh")
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "Chinese (Simplified) speech pack" in notes[0], notes
    assert [_voice(c) for c in calls.read_text(encoding="utf-8").splitlines()] == [None, None]


def test_a_wsay_voice_that_is_not_installed_is_one_line_naming_those_that_are(tmp_path, monkeypatch):
    fake_wsay(tmp_path, monkeypatch)
    env = {"PATH": f"{tmp_path}:{__import__('os').environ['PATH']}"}
    from conftest import run_chat

    args = ("--text", "--tts", "wsay", "--voice", "Hazel", "--no-play", "--save-audio", str(tmp_path / "r"))
    run = run_chat(*args, env=env, stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "no voice 'Hazel'" in run.stderr and "3 Microsoft Huihui" in run.stderr
