"""Where things are, the defaults a few modules share, and the --platform presets. (The settings
themselves are declared in settings.py.)"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
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
