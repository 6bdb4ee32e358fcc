#!/usr/bin/env python3
"""How much audio should Whisper's encoder see, and which languages may it hear? Word error rate, wrong
languages and time, per rule.

Whisper encodes 30 s windows. A question of 2-3 s can be encoded in a window fitted to it, which is
several times faster; too short a window makes Whisper mishear. This measures, on real and synthetic
speech in English and Mandarin, each window rule side by side in one run, with the language detected
from the same encoder output (as the program does), against faster-whisper's own transcribe() (a 30 s
window, encoded once for language detection and once more for decoding). Each rule is measured with
the language chosen among all of Whisper's, and among the user's (--languages en,zh): the likeliest of
those two.

Clips: questions (three tuned on, six held out) spoken by piper's joe and by espeak-ng's default,
British and American English voices; three Chinese questions by espeak-ng's Mandarin voice, from their
pinyin (bench/speech.py says why);
pytest-audioeval's English and Mandarin clips; F5-TTS's real English and Mandarin reference recordings
(see tests/clips.py and bench/speech.py for where they come from).

    python bench/stt_window.py [--whisper-model base] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speech import CHINESE, HELD_OUT, say  # noqa: E402

from latency import QUESTIONS, machine, percentile  # noqa: E402

USER = ("en", "zh")
# rule: (encoder window (padding, at least), the languages it may hear: None for any)
RULES: dict[str, tuple[tuple[int, int] | None, tuple[str, ...] | None]] = {
    "transcribe() 30 s x2": (None, None),  # faster-whisper's own path: detection pass + decoding pass
    "30 s, one pass": ((3000, 3000), None),
    "speech + 1 s": ((100, 0), None),
    "speech + 2 s": ((200, 0), None),
    "speech + 2 s, >= 10 s": ((200, 1000), None),
    "speech + 2 s, >= 15 s": ((200, 1500), None),
    "30 s, one pass, en,zh": ((3000, 3000), USER),
    "speech + 2 s, >= 10 s, en,zh": ((200, 1000), USER),  # the program's default
}
VOICES = ("piper", "espeak", "espeak:en-gb", "espeak:en-us")


CHINESE_DIGITS = str.maketrans({"〇": "0", "零": "0", "一": "1", "二": "2", "三": "3", "四": "4", "五": "5",
                                "六": "6", "七": "7", "八": "8", "九": "9"})  # fmt: skip


DIGITS = "zero one two three four five six seven eight nine ten".split()
NUMBERS = {str(n): word for n, word in enumerate(DIGITS)}


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER for English (digits as words, so "1" and "one" agree); for Mandarin, the character error
    rate in simplified characters, numerals as digits."""
    import jiwer

    if language == "zh":
        import opencc

        to_simplified = opencc.OpenCC("t2s")

        def chars(text: str) -> str:
            text = to_simplified.convert(text).replace("十", "10").translate(CHINESE_DIGITS)
            return " ".join(ch for ch in text if ch.isalnum())

        return float(jiwer.wer(chars(reference), chars(hypothesis)))
    from conftest import normalize

    def words(text: str) -> str:
        return " ".join(NUMBERS.get(word, word) for word in normalize(text.replace("-", " ")).split())

    return float(jiwer.wer(words(reference), words(hypothesis)))


def clips(work: Path) -> list[tuple[str, Path, str, str]]:
    """(name, path, reference text, language) for every clip."""
    from clips import real_clips

    found = []
    for i, question in enumerate([*QUESTIONS, *HELD_OUT]):
        for voice in VOICES:
            name = f"q{i}-{voice.replace(':', '-')}.wav"
            found.append((name, say(question, voice, work / name), question, "en"))
    for i, (question, language, pinyin) in enumerate(CHINESE):
        name = f"zh{i}-espeak-cmn-pinyin.wav"
        found.append((name, say(pinyin, "espeak:cmn-latn-pinyin", work / name), question, language))
    found += [(name, path, text, lang) for name, path, text, lang in real_clips()]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whisper-model", default="base")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from talkgpt4all.audio import load_audio
    from talkgpt4all.stt.faster_whisper import EncoderWindow, FasterWhisperTranscriber

    stt = FasterWhisperTranscriber(args.whisper_model)
    with tempfile.TemporaryDirectory() as tmp:
        found = clips(Path(tmp))
        audio = {name: load_audio(path) for name, path, _, _ in found}
    rows: dict[str, dict[str, Any]] = {}
    for rule, (window, languages) in RULES.items():
        stt.languages = languages
        if window is not None:
            stt.window = EncoderWindow(pad=window[0], minimum=window[1])
        errors, times, wrong_language, per_clip = [], [], 0, {}
        for name, _, reference, language in found:
            samples = audio[name]
            stt.transcribe(samples[:16000])  # warm
            started = time.perf_counter()
            if window is None:
                segments, info = stt.model.transcribe(
                    samples, beam_size=1, condition_on_previous_text=False, without_timestamps=True
                )
                text, heard_language = " ".join(s.text.strip() for s in segments), info.language
            else:
                heard = stt.transcribe(samples)
                text, heard_language = heard.text, heard.language
            times.append(time.perf_counter() - started)
            errors.append(error_rate(reference, text, language))
            wrong_language += heard_language != language
            per_clip[name] = {"text": text, "language": heard_language, "error": round(errors[-1], 3)}
        rows[rule] = {
            "mean_error": sum(errors) / len(errors),
            "max_error": max(errors),
            "wrong_language": wrong_language,
            "stt_p50": percentile(times, 0.5),
            "stt_max": max(times),
            "clips": per_clip,
        }
    figures = {"machine": machine(), "whisper": args.whisper_model, "clips": len(found), "rules": rows}
    expected = {name: language for name, _, _, language in found}
    wrong = {
        rule: [n for n, c in row["clips"].items() if c["language"] != expected[n]]
        for rule, row in rows.items()
    }
    figures["wrong_language_clips"] = wrong
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
        return 0
    print(f"machine: {figures['machine']}; Whisper {args.whisper_model}; {len(found)} clips (en and zh)")
    print(f"{'window':<30}{'mean WER/CER':>14}{'max':>8}{'wrong lang':>12}{'STT p50':>10}{'STT max':>10}")
    for rule, row in rows.items():
        print(
            f"{rule:<30}{row['mean_error']:>14.3f}{row['max_error']:>8.2f}{row['wrong_language']:>12}"
            f"{row['stt_p50']:>10.3f}{row['stt_max']:>10.3f}"
        )
    for rule, names in wrong.items():
        if names:
            which = ", ".join(f"{n} as {rows[rule]['clips'][n]['language']}" for n in names)
            print(f"{rule}: wrong language: {which}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
