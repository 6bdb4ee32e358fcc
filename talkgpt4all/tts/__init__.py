"""Text to speech: one Protocol, and a registry from engine name to factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from talkgpt4all.audio import Audio
from talkgpt4all.errors import MissingDependencyError, UnknownEngineError

if TYPE_CHECKING:
    from talkgpt4all.settings import Speech


class Synthesizer(Protocol):
    def synthesize(self, text: str, language: str | None = None) -> Audio:
        """Speak one sentence into audio. language (a Whisper code such as "en" or "zh") is a hint."""


def _espeak(s: Speech) -> Synthesizer:
    from talkgpt4all.tts.commands import Espeak

    return Espeak(s.voice, s.rate)


def _say(s: Speech) -> Synthesizer:
    from talkgpt4all.tts.commands import Say

    return Say(s.voice, s.rate)


def _wsay(s: Speech) -> Synthesizer:
    from talkgpt4all.tts.commands import Wsay

    return Wsay(s.voice, s.rate)


def _piper(s: Speech) -> Synthesizer:
    from talkgpt4all.tts.piper import Piper

    return Piper(s.voice, s.rate)


def _auto(s: Speech) -> Synthesizer:
    """A voice per language (Linux's default). A named voice picks its engine: piper's names look like
    en_US-joe-medium (or a .onnx file), anything else is an espeak voice."""
    if s.voice:
        from talkgpt4all.tts.piper import is_voice_name

        return _piper(s) if is_voice_name(s.voice) else _espeak(s)
    from talkgpt4all.tts.auto import VoicePerLanguage

    return VoicePerLanguage(s.rate)


def _server(s: Speech) -> Synthesizer:
    from talkgpt4all.errors import UsageError
    from talkgpt4all.tts.remote import RemoteSynthesizer

    if not s.url:
        raise UsageError("--tts openai needs --tts-url, e.g. http://127.0.0.1:8880/v1 (Kokoro-FastAPI)")
    return RemoteSynthesizer(s.url, s.voice, s.model, s.api_key)


ENGINES: dict[str, Callable[[Speech], Synthesizer] | None] = {
    "auto": _auto,  # piper where it has a voice for the reply's language, else espeak-ng
    "espeak": _espeak,
    "piper": _piper,  # neural voices, optional: pip install -e '.[piper]'
    "say": _say,
    "wsay": _wsay,
    "openai": _server,  # any OpenAI-compatible /v1/audio/speech
    "none": None,  # silent: replies are only printed
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("tts", name, sorted(ENGINES))


def make_synthesizer(name: str, settings: Speech) -> Synthesizer | None:
    """The named engine (the section's, or the platform's), with the section's voice and rate, checked
    to be installed; None for "none"."""
    check_engine(name)
    factory = ENGINES[name]
    return factory(settings) if factory else None


def list_voices() -> str:
    """What each engine on this machine can speak with, and in which language."""
    import shutil
    import subprocess

    lines = []
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        done = subprocess.run([espeak, "--voices"], capture_output=True, text=True, check=False)
        rows = [row.split() for row in done.stdout.splitlines()[1:] if row.strip()]
        lines.append(f"espeak ({len(rows)} voices; --tts espeak --voice NAME):")
        lines += [f"  {row[3]:<24} {row[1]}" for row in rows if len(row) > 3]
    try:
        import piper  # noqa: F401

        from talkgpt4all.tts.piper import DEFAULT_VOICES, voices_here

        here = voices_here()
        lines.append("piper (--tts piper --voice NAME):")
        lines += [f"  {name:<24} {language:<8} {path}" for name, language, path in here]
        missing = [
            f"{name} ({lang})" for lang, name in DEFAULT_VOICES.items() if name not in {h[0] for h in here}
        ]
        if missing:
            lines.append("  downloaded when first needed: " + ", ".join(missing))
    except ImportError:
        lines.append("piper: not installed (pip install -e '.[piper]')")
    if shutil.which("say"):
        lines.append("say: see `say -v '?'` (--tts say --voice NAME; Chinese replies get Tingting)")
    try:
        from talkgpt4all.tts.commands import Wsay

        wsay = Wsay()
        lines.append("wsay (--tts wsay --voice NUMBER or part of the name; Chinese replies get Huihui):")
        lines += [f"  {number:>3}  {name}" for number, name in wsay.voices()]
    except MissingDependencyError:
        pass
    return "\n".join(lines)
