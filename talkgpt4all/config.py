"""The typed configuration the core runs on, and the --platform presets."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path

from talkgpt4all.errors import PlatformError

DEFAULT_WHISPER = "base"
PROJECT_DIR = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_DIR / "models"
BIN_DIR = PROJECT_DIR / "bin"

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud, so keep them short: "
    "one to three plain sentences, no lists, no markdown, no emoji. "
    "Answer in the language the user speaks."
)


@dataclass(frozen=True)
class Platform:
    """A --platform preset: the OS it runs on, its speech command, and its llama.cpp binary name."""

    name: str
    system: str  # platform.system() of the OS it is meant for
    tts: str
    binary: str
    metal: bool = False


PLATFORMS: dict[str, Platform] = {
    "mac-m1": Platform("mac-m1", "Darwin", tts="say", binary="llama-server", metal=True),
    "mac-intel": Platform("mac-intel", "Darwin", tts="say", binary="llama-server"),
    "linux": Platform("linux", "Linux", tts="auto", binary="llama-server"),
    "windows": Platform("windows", "Windows", tts="wsay", binary="llama-server.exe"),
}


_OS_NAMES = {"Darwin": "macOS", "Linux": "Linux", "Windows": "Windows"}


def detect_platform(system: str | None = None, machine: str | None = None) -> str:
    """The preset for the OS this runs on."""
    system = system or _platform.system()
    machine = (machine or _platform.machine()).lower()
    if system == "Darwin":
        return "mac-m1" if machine in ("arm64", "aarch64") else "mac-intel"
    if system == "Windows":
        return "windows"
    return "linux"


def check_platform(name: str, system: str | None = None) -> Platform:
    """The preset named, or PlatformError when it is meant for another OS."""
    preset = PLATFORMS[name]
    system = system or _platform.system()
    if preset.system != system:
        here = detect_platform(system)
        raise PlatformError(
            f"--platform {name} is for {_OS_NAMES[preset.system]}, but this machine runs "
            f"{_OS_NAMES.get(system, system)}: "
            f"use --platform {here} (or leave it out to detect it)"
        )
    return preset


@dataclass
class Config:
    """Everything a session needs, built once from the command line."""

    platform: Platform
    # speech to text
    stt: str = "faster-whisper"
    whisper_model: str | None = None  # None: the default (DEFAULT_WHISPER), which may fall back to a starter
    language: str | None = None
    zh_script: str = "simplified"  # Chinese heard and asked for in simplified or traditional characters
    stt_url: str | None = None  # --stt openai
    stt_api_key: str | None = None
    # language model
    llm: str = "llama-cpp"
    model: str | None = None
    llm_url: str | None = None
    llm_api_key: str | None = None
    binary: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float = 0.7
    max_tokens: int = 256
    context: int = 4096
    seed: int = -1
    threads: int | None = None
    context_shift: bool = True
    # voice
    tts: str = "espeak"
    voice: str | None = None
    rate: int | None = None
    tts_url: str | None = None  # --tts openai
    tts_api_key: str | None = None
    tts_model: str | None = None
    # input and output
    inputs: list[Path] = field(default_factory=list)
    text: bool = False
    save_audio: Path | None = None
    play: bool = True
    transcript: Path | None = None
    resume: Path | None = None
    input_device: str | None = None
    output_device: str | None = None
    # turns and speed
    vad: bool = False
    silence_ms: int | None = None  # None: the default (500 ms) when no turn model decides
    turn_model: str | None = None  # None: Smart Turn if it can be had; "none": the fixed pause
    barge_in: bool | None = None  # None: on when echo cancellation is (hands-free, on speakers)
    aec: bool = True  # hands-free: take the speakers' sound out of what the microphone hears
    speculate: bool = True  # hands-free: start a turn's work as the user pauses
    stream: bool = True
    timings: bool = False
    debug: bool = False

    @property
    def whisper(self) -> str:
        return self.whisper_model or DEFAULT_WHISPER

    @property
    def transcript_path(self) -> Path | None:
        """Where turns are written: --transcript, else the file --resume continues."""
        return self.transcript or self.resume

    @property
    def cancels_echo(self) -> bool:
        """Whether the microphone's stream is echo-cancelled: hands-free, with replies on speakers."""
        return self.vad and self.aec and self.play and self.tts != "none"

    @property
    def speaks(self) -> bool:
        """Whether replies are synthesized at all (something will hear or keep them)."""
        return self.tts != "none" and (self.play or self.save_audio is not None)
