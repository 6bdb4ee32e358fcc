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
