"""Speech through the operating system's own command: espeak-ng (Linux), say (macOS), wsay (Windows).

Each command writes audio to a file or a pipe, which is read back, so that every engine plays through
the same sinks. The text always goes in through stdin or a file, never on the command line: a reply
that starts with "-" or holds quotes or "$(...)" is spoken as it is, never read as an option.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from talkgpt4all.audio import Audio
from talkgpt4all.config import BIN_DIR
from talkgpt4all.errors import MissingDependencyError, SpeechError
from talkgpt4all.text import has_han

log = logging.getLogger("talkgpt4all")

TIMEOUT = 60  # seconds for one sentence; a hung speech command must not hang the chat


def _run(argv: list[str], text: str) -> bytes:
    try:
        done = subprocess.run(
            argv,
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT,
            # Its own session: Ctrl-C at the terminal reaches only us (we stop the reply, then end the
            # command), not the command itself, which would die of it and report "exited with -2".
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpeechError(f"{Path(argv[0]).name} failed ({exc}): try another --tts, or --tts none") from exc
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise SpeechError(
            f"{Path(argv[0]).name} exited with {done.returncode}"
            f"{': ' + detail[-1] if detail else ''}: check --voice, or use --tts none"
        )
    return done.stdout


def _read_audio(data: bytes | Path, what: str) -> Audio:
    try:
        samples, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise SpeechError(f"{what} produced no readable audio ({exc}): try another --voice or --tts") from exc
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return Audio(np.ascontiguousarray(samples, dtype=np.float32), int(rate))


# Whisper language codes whose espeak-ng voice has another name.
_ESPEAK_VOICES = {"zh": "cmn", "yue": "yue"}
# macOS's own Mandarin voice, for a Chinese reply when no --voice is named.
SAY_CHINESE = "Tingting"
ESPEAK_CHINESE_NOTE = (
    "espeak-ng's Mandarin is hard to understand (it reads tones as numbers): for a natural Chinese "
    "voice use --tts piper (pip install -e '.[piper]'), or --tts none to only read the replies"
)


class Espeak:
    """espeak-ng, else espeak. Writes a WAV to stdout."""

    def __init__(self, voice: str | None = None, rate: int | None = None) -> None:
        exe = shutil.which("espeak-ng") or shutil.which("espeak")
        if exe is None:
            raise MissingDependencyError(
                "espeak-ng is not installed: sudo apt-get install espeak-ng (or pass --tts none)"
            )
        self.exe, self.voice, self.rate = exe, voice, rate
        self._bad_voices: set[str] = set()
        self._warned_chinese = False
        if voice is not None and not self.has_voice(voice):
            # espeak-ng itself speaks an unknown voice in its default one, and says nothing.
            raise SpeechError(
                f"espeak-ng has no voice {voice!r}: see --list-voices for its voices (e.g. en-us, en+f3)"
            )

    def _listed(self, kind: str = "") -> set[str]:
        """What `espeak-ng --voices[=kind]` lists: each voice's languages, name and file, lowercased."""
        listing = _run([self.exe, f"--voices={kind}" if kind else "--voices"], "").decode(errors="replace")
        names: set[str] = set()
        for row in listing.splitlines()[1:]:
            cells = row.split()
            if len(cells) < 5:
                continue
            language, name, file = cells[1], cells[3], cells[4]
            others = re.findall(r"\(([^ )]+) \d+\)", " ".join(cells[5:]))
            names |= {language, name, file, file.rsplit("/", 1)[-1], *others}
        return {n.lower() for n in names}

    def has_voice(self, voice: str) -> bool:
        """Whether espeak-ng has this voice: a language (en-us), a voice's name or file, optionally with a
        +variant (en+f3), or an MBROLA voice (mb-en1)."""
        base, _, variant = voice.lower().partition("+")
        found = base in self._listed("mb" if base.startswith("mb-") else "")
        return found and (not variant or variant in self._listed("variant"))

    def _voice_for(self, text: str, language: str | None) -> str | None:
        if self.voice:
            return self.voice
        if has_han(text) or language == "zh":
            if not self._warned_chinese:
                self._warned_chinese = True
                log.warning(ESPEAK_CHINESE_NOTE)
            return "cmn"
        if language and language != "en":
            return _ESPEAK_VOICES.get(language, language)
        return None

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        voice = self._voice_for(text, language)
        if voice in self._bad_voices:
            voice = None
        argv = [self.exe, "--stdout", "--stdin"]
        if self.rate:
            argv += ["-s", str(self.rate)]
        try:
            wav = _run([*argv, "-v", voice] if voice else argv, text)
        except SpeechError:
            if voice is None or voice == self.voice:
                raise
            # No espeak voice for the language Whisper heard: say it with the default voice.
            log.warning("espeak has no voice %r; using its default voice", voice)
            self._bad_voices.add(voice)
            wav = _run(argv, text)
        return _read_audio(wav, "espeak")


class Say:
    """macOS `say`, reading the text from stdin and writing an AIFF file."""

    def __init__(self, voice: str | None = None, rate: int | None = None) -> None:
        exe = shutil.which("say")
        if exe is None:
            raise MissingDependencyError(
                "the macOS `say` command was not found: on Linux use --platform linux, or pass --tts none"
            )
        self.exe, self.voice, self.rate = exe, voice, rate

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "reply.aiff"
            argv = [self.exe, "-f", "-", "-o", str(out)]
            voice = self.voice or (SAY_CHINESE if has_han(text) or language == "zh" else None)
            if voice:
                argv += ["-v", voice]
            if self.rate:
                argv += ["-r", str(self.rate)]
            _run(argv, text)
            return _read_audio(out, "say")


class Wsay:
    """wsay.exe on Windows (bin/wsay.exe or on PATH), reading a UTF-8 text file and writing a WAV.

    wsay picks a voice by its number in `wsay --list_voices`; --voice takes that number or a part of the
    voice's name ("Zira"). A Chinese reply gets Huihui (or another Chinese voice) when one is installed.
    """

    def __init__(self, voice: str | None = None, rate: int | None = None) -> None:
        local = BIN_DIR / "wsay.exe"
        exe = str(local) if local.is_file() else shutil.which("wsay")
        if exe is None:
            raise MissingDependencyError(
                "wsay.exe was not found: download it from the wsay releases into bin/ (see bin/README.md), "
                "or pass --tts none"
            )
        if rate:
            log.warning("wsay has no speaking-rate option in words a minute; ignoring --rate")
        self.exe = exe
        self._voices: list[tuple[str, str]] | None = None  # (number, name), as wsay lists them
        self.voice = self._number(voice) if voice else None
        self._chinese: list[str] | None = None  # the Chinese voice, once looked up
        self._warned_chinese = False

    def voices(self) -> list[tuple[str, str]]:
        """wsay's installed voices: ("1", "Microsoft David Desktop - English (United States)"), ..."""
        if self._voices is None:
            listing = _run([self.exe, "--list_voices"], "").decode("utf-8", errors="replace")
            self._voices = parse_wsay_voices(listing)
        return self._voices

    def _number(self, voice: str) -> str:
        if voice.isdigit():
            return voice
        found = [number for number, name in self.voices() if voice.casefold() in name.casefold()]
        if not found:
            names = "; ".join(f"{n} {name}" for n, name in self.voices()) or "none"
            raise SpeechError(f"wsay has no voice {voice!r} (installed: {names}): check --voice")
        return found[0]

    def _chinese_voice(self) -> str | None:
        if self._chinese is None:
            voices = self.voices()
            huihui = [n for n, name in voices if "huihui" in name.casefold()]
            chinese = [n for n, name in voices if "chinese" in name.casefold() or "中文" in name]
            self._chinese = (huihui or chinese)[:1]
        return self._chinese[0] if self._chinese else None

    def _voice_for(self, text: str, language: str | None) -> str | None:
        if self.voice or not (has_han(text) or language == "zh"):
            return self.voice
        voice = self._chinese_voice()
        if voice is None and not self._warned_chinese:
            self._warned_chinese = True
            log.warning(
                "Windows has no Chinese voice installed: add the Chinese (Simplified) speech pack in "
                "Settings > Time & language > Speech (it brings Huihui), or use --tts piper"
            )
        return voice

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "reply.txt", Path(tmp) / "reply.wav"
            src.write_text(text, encoding="utf-8")
            # --nospeechxml: a reply holding "<" is read out, never parsed as SAPI markup.
            argv = [self.exe, "--nospeechxml", "-i", str(src), "-o", str(out)]
            voice = self._voice_for(text, language)
            if voice:
                argv += ["-v", voice]
            _run(argv, "")
            return _read_audio(out, "wsay")


def parse_wsay_voices(listing: str) -> list[tuple[str, str]]:
    """The lines of `wsay --list_voices` ("1 : Microsoft Huihui Desktop - Chinese (Simplified)") as
    (number, name) pairs."""
    voices = []
    for line in listing.splitlines():
        number, sep, name = line.strip().partition(" : ")
        if sep and number.isdigit():
            voices.append((number, name.strip()))
    return voices
