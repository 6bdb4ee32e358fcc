"""Every setting, declared once: its flag, type, default, range and help.

A setting is a field of one section (speech to text, language model, voice, input and output, turns,
general), and its metadata says how it is given: the command-line parser is made from these fields
(cli.py), a config file is checked against them (configfile.py), --print-config shows them, and each
stage's factory takes its own section (stt.make_transcriber(config.stt), llm.make_chat_model(config.llm),
...). A default is written here and nowhere else.

Values come from three places, the later winning: the defaults here, the config file, the command line.
`Config.source` says which one each setting came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from talkgpt4all.audio.vad import VadOptions
from talkgpt4all.config import DEFAULT_SYSTEM_PROMPT, DEFAULT_WHISPER, PLATFORMS, Platform, detect_platform
from talkgpt4all.errors import UsageError
from talkgpt4all.language import ANY, WHISPER_LANGUAGES, allowed_languages, default_languages
from talkgpt4all.llm import GenerationOptions

MIN_CONTEXT = 128  # tokens: below this no system prompt and reply fit
MAX_CONTEXT = 1 << 20  # tokens: no GGUF model knows more; more is a typo, and memory it cannot have
MIN_PROMPT_ROOM = 64  # tokens the prompt must keep beside --max-tokens

Kind = Literal["value", "list", "on", "off", "on-off"]


@dataclass(frozen=True)
class Option:
    """How a setting is given: its flag (the config file's key is the flag without "--"), and for a
    value, its type, range or choices.

    kind: "value" (--flag VALUE), "list" (--flag VALUE, repeatable), "on" (--flag sets True), "off"
    (--no-thing sets the setting `thing` False), "on-off" (--flag and --no-flag).
    """

    flag: str
    help: str
    kind: Kind = "value"
    type: type = str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[str], str] | None = None  # for a string: the value checked (ValueError says why)
    metavar: str | None = None
    secret: bool = False  # never shown (--print-config)

    @property
    def key(self) -> str:
        return self.flag[2:]

    def parse(self, text: str) -> Any:
        """The value of this text, or ValueError with a message for the user."""
        if self.type in (int, float):
            return _number(text, self.type, self.low, self.high)
        if self.type is Path:
            return Path(text).expanduser()
        if self.choices is not None and text not in self.choices:
            raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}")
        return self.check(text) if self.check else text


def _number(text: str, kind: type, low: float | None, high: float | None) -> int | float:
    try:
        value: int | float = kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if low is not None and value < low:
        raise ValueError(f"{text} is too small: use at least {_plain(low)}")
    if high is not None and value > high:
        raise ValueError(f"{text} is too large: use at most {_plain(high)}")
    return value


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def setting(default: Any, flag: str, help: str, **how: Any) -> Any:
    """A field of a section, with its Option. `help` may name {default}, {low} and {high}."""
    option = Option(flag, help, **how)
    values = {"default": default, "low": _plain(option.low or 0), "high": _plain(option.high or 0)}
    option = dataclasses.replace(option, help=help.format(**values))
    return field(default=default, metadata={"option": option})


# ------------------------------------------------------------------ value checks


def http_url(text: str) -> str:
    parts = urlparse(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1")
    return text


def language_code(text: str) -> str:
    code = text.strip().lower()
    if code in WHISPER_LANGUAGES:
        return code
    named = [c for c, name in WHISPER_LANGUAGES.items() if name == code]
    if named:
        raise ValueError(f"{text!r} is a language name: use its code, --language {named[0]}")
    close = difflib.get_close_matches(code, [*WHISPER_LANGUAGES, *WHISPER_LANGUAGES.values()], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"{text!r} is not a language Whisper knows{hint}: use a code such as en, zh or de")


def language_codes(text: str) -> str:
    """--languages: codes separated by commas (en,zh), or any."""
    if text.strip().lower() == ANY:
        return ANY
    codes: list[str] = []
    for item in text.replace(" ", ",").split(","):
        if not item:
            continue
        try:
            code = language_code(item)
        except ValueError as exc:
            raise ValueError(str(exc).replace("--language ", "")) from None
        if code not in codes:
            codes.append(code)
    if not codes:
        raise ValueError(f"{text!r} names no language: give codes such as en,zh, or any")
    return ",".join(codes)


def _engines(stage: str) -> Callable[[str], str]:
    """A check of an engine's name against the stage's registry (its error lists the valid names)."""

    def check(name: str) -> str:
        from talkgpt4all import llm, stt, tts

        checks: dict[str, Callable[[str], None]] = {
            "stt": stt.check_engine,
            "llm": llm.check_engine,
            "tts": tts.check_engine,
        }
        try:
            checks[stage](name)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return name

    return check


# ------------------------------------------------------------------ the sections


@dataclass(frozen=True)
class General:
    platform: str = setting(
        detect_platform(),
        "--platform",
        "preset: the speech command, the llama.cpp binary and acceleration (default: detected: {default})",
        choices=tuple(sorted(PLATFORMS)),
    )
    verbose: bool = setting(False, "--verbose", "log what is loaded and from where", kind="on")
    debug: bool = setting(False, "--debug", "show tracebacks and engine logs", kind="on")


@dataclass(frozen=True)
class SpeechToText:
    engine: str = setting(
        "faster-whisper",
        "--stt",
        "faster-whisper, openai-whisper, or openai: a server (--stt-url) (default: {default})",
        check=_engines("stt"),
    )
    url: str | None = setting(
        None,
        "--stt-url",
        "with --stt openai, the server's API, e.g. http://127.0.0.1:8000/v1 (speaches); --whisper-model is "
        "then the server's model name (default: whisper-1)",
        check=http_url,
        metavar="URL",
    )
    api_key: str | None = setting(
        None, "--stt-api-key", "with --stt openai, the server's key", metavar="KEY", secret=True
    )
    model: str | None = setting(
        None,
        "--whisper-model",
        f"Whisper size (tiny.en, base, small, ...) or model path (default: {DEFAULT_WHISPER})",
        metavar="NAME|PATH",
    )
    language: str | None = setting(
        None,
        "--language",
        "the language of every turn, e.g. en or zh (default: each turn's own: what Whisper hears, or a "
        "typed line's script; the reply follows it)",
        check=language_code,
    )
    languages: str = setting(
        default_languages(),
        "--languages",
        "the languages you speak, e.g. en,zh: each spoken turn is heard as the likeliest of them, never as "
        "another; any: every language Whisper knows (default: English and the system locale's: {default})",
        check=language_codes,
        metavar="CODES",
    )
    zh_script: str = setting(
        "simplified",
        "--zh-script",
        "the characters Chinese is written in, heard and asked for (default: {default})",
        choices=("simplified", "traditional"),
    )

    @property
    def heard_languages(self) -> tuple[str, ...] | None:
        """What speech to text may hear a turn as: --language alone, else --languages (None: any)."""
        return (self.language,) if self.language else allowed_languages(self.languages)


@dataclass(frozen=True)
class LanguageModel:
    engine: str = setting(
        "llama-cpp",
        "--llm",
        "back end: llama-cpp (in process), openai (a server), binary (bin/llama-server), gpt4all (default: "
        "{default})",
        check=_engines("llm"),
    )
    url: str | None = setting(
        None,
        "--llm-url",
        "with --llm openai: the server's API, e.g. http://127.0.0.1:11434/v1 (ollama)",
        check=http_url,
        metavar="URL",
    )
    api_key: str | None = setting(
        None,
        "--llm-api-key",
        "with --llm openai: the server's API key, if it wants one",
        metavar="KEY",
        secret=True,
    )
    binary: str | None = setting(
        None,
        "--binary",
        "with --llm binary: the llama.cpp server to run (default: bin/llama-server)",
        metavar="PATH",
    )
    model: str | None = setting(
        None,
        "--model",
        "a short name (see --list-models), a .gguf path, a file in models/, or owner/repo/file.gguf on "
        "Hugging Face (default: the largest .gguf in models/, else the starter model)",
        metavar="NAME|PATH",
    )
    system_prompt: str = setting(DEFAULT_SYSTEM_PROMPT, "--system-prompt", "instructions for the model")
    temperature: float = setting(
        0.7,
        "--temperature",
        "sampling temperature, {low} to {high} (default: {default})",
        type=float,
        low=0,
        high=2,
    )
    max_tokens: int = setting(
        256, "--max-tokens", "longest reply in tokens (default: {default})", type=int, low=1
    )
    context: int = setting(
        4096,
        "--context",
        "context window in tokens, {low} to {high} (default: {default})",
        type=int,
        low=MIN_CONTEXT,
        high=MAX_CONTEXT,
    )
    context_shift: bool = setting(
        True,
        "--no-context-shift",
        "when old turns are dropped, compute the history again instead of shifting the model's cache "
        "(slower; for comparison)",
        kind="off",
    )
    seed: int = setting(-1, "--seed", "sampling seed (default: random)", type=int, low=-1)
    threads: int | None = setting(
        None,
        "--threads",
        "CPU threads, for speech to text too (default: all cores; llama-cpp writes the reply on one fewer)",
        type=int,
        low=1,
        high=1024,
    )

    @property
    def generation(self) -> GenerationOptions:
        return GenerationOptions(self.max_tokens, self.temperature, self.seed)


@dataclass(frozen=True)
class Speech:
    engine: str | None = setting(
        None,
        "--tts",
        "auto (a piper voice per language where one can be had, else espeak-ng: Linux's default), espeak, "
        "say, wsay, piper, openai (a server) or none (default: the platform's)",
        check=_engines("tts"),
    )
    url: str | None = setting(
        None,
        "--tts-url",
        "with --tts openai, the server's API, e.g. http://127.0.0.1:8880/v1 (Kokoro-FastAPI)",
        check=http_url,
        metavar="URL",
    )
    api_key: str | None = setting(
        None, "--tts-api-key", "with --tts openai, the server's key", metavar="KEY", secret=True
    )
    model: str | None = setting(
        None, "--tts-model", "with --tts openai, the server's model (default: tts-1)", metavar="NAME"
    )
    voice: str | None = setting(
        None,
        "--voice",
        "the voice, for every reply (default: the engine's, and with piper one per language); see "
        "--list-voices",
    )
    rate: int | None = setting(
        None, "--rate", "speaking rate in words per minute, {low} to {high}", type=int, low=20, high=1000
    )


@dataclass(frozen=True)
class InputOutput:
    inputs: tuple[Path, ...] = setting(
        (),
        "--input",
        "an audio file (wav/flac/mp3) as one spoken turn; repeat for more turns, then exit",
        kind="list",
        type=Path,
        metavar="FILE",
    )
    text: bool = setting(False, "--text", "read typed turns from stdin, one a line, until EOF", kind="on")
    save_audio: Path | None = setting(
        None, "--save-audio", "write replies to DIR/reply-001.wav, ...", type=Path, metavar="DIR"
    )
    play: bool = setting(True, "--no-play", "don't play audio", kind="off")
    transcript: Path | None = setting(
        None, "--transcript", "append one JSON line per turn", type=Path, metavar="FILE"
    )
    resume: Path | None = setting(
        None,
        "--resume",
        "continue the conversation in a --transcript file; new turns are appended to it",
        type=Path,
        metavar="FILE",
    )
    input_device: str | None = setting(
        None, "--input-device", "microphone (see --list-devices)", metavar="NAME|INDEX"
    )
    output_device: str | None = setting(
        None, "--output-device", "speaker (see --list-devices)", metavar="NAME|INDEX"
    )


@dataclass(frozen=True)
class Turns:
    vad: bool = setting(
        False,
        "--vad",
        "hands-free: a turn starts when you speak and ends when you pause (default: Enter)",
        kind="on",
    )
    silence_ms: int | None = setting(
        None,
        "--silence-ms",
        f"with --vad, the pause that ends a turn (default: {VadOptions.silence_ms}); with a --turn-model as "
        f"well, the longest wait for an unfinished sentence (default: {VadOptions.unfinished_ms}); {{low}} "
        "to {high}",
        type=int,
        low=50,
        high=10_000,
        metavar="MS",
    )
    turn_model: str | None = setting(
        None,
        "--turn-model",
        "with --vad, the model that hears whether you have finished (default: Smart Turn v3.2: a finished "
        "sentence ends the turn after a short pause, an unfinished one waits); none: a fixed pause "
        "(--silence-ms) ends each turn; --silence-ms alone means none",
        metavar="NAME|PATH|none",
    )
    barge_in: bool | None = setting(
        None,
        "--barge-in",
        "with --vad, speaking during a reply interrupts it (default: on while echo cancellation is; with "
        "--no-aec, use headphones)",
        kind="on-off",
    )
    aec: bool = setting(
        True,
        "--aec",
        "with --vad, take the reply's own sound out of what the microphone hears, so you can talk over it "
        "on speakers (default: on)",
        kind="on-off",
    )
    speculate: bool = setting(
        True,
        "--no-speculate",
        "wait for the end of a spoken turn before transcribing it (default: speech to text and the model's "
        "prompt start as you pause, and are dropped if you speak on)",
        kind="off",
    )
    stream: bool = setting(
        True,
        "--no-stream",
        "sequential baseline: the whole reply, then all its speech, then playback",
        kind="off",
    )
    timings: bool = setting(False, "--timings", "print a line of timings under each reply", kind="on")

    @property
    def turn_model_spec(self) -> str | None:
        """--turn-model, where --silence-ms alone means none (a fixed pause)."""
        return "none" if self.silence_ms is not None and self.turn_model is None else self.turn_model

    @property
    def vad_options(self) -> VadOptions:
        """When a hands-free turn ends: with a turn model, --silence-ms is the longest wait for an
        unfinished sentence; without one, the pause that ends every turn."""
        if self.silence_ms is None:
            return VadOptions()
        return VadOptions(silence_ms=self.silence_ms, unfinished_ms=self.silence_ms)


def wake_phrase(text: str) -> str:
    phrase = " ".join(text.split())
    if not any(ch.isalnum() for ch in phrase):
        raise ValueError(f"{text!r} has no words: give the words to listen for, e.g. computer or 小助手")
    if len(phrase) > 60:
        raise ValueError("a wake phrase is a few words: use at most 60 characters")
    return phrase


@dataclass(frozen=True)
class WakeUp:
    wake: str | None = setting(
        None,
        "--wake",
        "with --vad, answer only after this wake word, heard by a small keyword model before any speech to "
        "text: hey_jarvis, okay_nabu, alexa, hey_mycroft, or a microWakeWord .json path (pip install -e "
        '".[wake]")',
        metavar="NAME|PATH",
    )
    wake_phrase: str | None = setting(
        None,
        "--wake-phrase",
        "with --vad, answer only speech that says this phrase, in any language (e.g. computer, 小助手); "
        "found in the transcript, so everything heard is transcribed",
        check=wake_phrase,
        metavar="TEXT",
    )
    follow_up: float = setting(
        8.0,
        "--follow-up",
        "with a wake word, how long after a reply the next question needs none (default: {default}; 0: "
        "always say it); {low} to {high}",
        type=float,
        low=0,
        high=3600,
        metavar="SECONDS",
    )
    chime: bool = setting(True, "--no-chime", "no sound when the wake word is heard", kind="off")

    @property
    def on(self) -> bool:
        return self.wake is not None or self.wake_phrase is not None


def tool_names(text: str) -> str:
    """--tools: built-in tools by name, separated by commas (time,timer), or none."""
    from talkgpt4all.tools.builtin import BUILTIN

    names = [name for name in text.replace(" ", ",").lower().split(",") if name]
    if not names or names == ["none"]:
        return "none"
    unknown = [name for name in names if name not in BUILTIN]
    if unknown:
        raise ValueError(
            f"there is no built-in tool {unknown[0]!r}: use {', '.join(BUILTIN)} (see --list-tools)"
        )
    return ",".join(dict.fromkeys(names))


@dataclass(frozen=True)
class Tools:
    tools: str = setting(
        "none",
        "--tools",
        "built-in tools the model may call, by name: time (the date and time), timer (a timer or reminder "
        "that speaks when it is due); none is on unless named (default: {default})",
        check=tool_names,
        metavar="NAME,...",
    )

    @property
    def names(self) -> tuple[str, ...]:
        return () if self.tools == "none" else tuple(self.tools.split(","))


MCP_KEYS = ("command", "args", "url", "env", "headers", "cwd", "tools", "confirm", "timeout")


@dataclass(frozen=True)
class McpServer:
    """An MCP server the config file names, in a table of its own:

    [mcp.notes]
    command = "python"              # started for the session, spoken to on its stdin and stdout
    args = ["-m", "notes_server"]
    env = { NOTES_DIR = "~/notes" }
    tools = ["list_notes", "read_note"]   # only these are given to the model (default: all)
    confirm = ["delete_note"]             # asked first ("Shall I ...? Say yes or no")
    timeout = 10                          # seconds a call may take

    [mcp.home]
    url = "http://127.0.0.1:8123/mcp"     # streamable HTTP
    headers = { Authorization = "Bearer ..." }
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    tools: tuple[str, ...] | None = None  # only these; None: all the server has
    confirm: tuple[str, ...] = ()
    timeout: float = 10.0

    @property
    def where(self) -> str:
        """What it is, in a few words: its command line or its URL (no environment: it may hold keys)."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args])


def mcp_servers(table: Any, where: str) -> tuple[McpServer, ...]:
    """The [mcp.NAME] tables of a config file, checked: UsageError names the first mistake."""
    if not isinstance(table, dict):
        raise UsageError(f"mcp in {where} should be tables, [mcp.NAME], one for each server")
    return tuple(_mcp_server(name, spec, where) for name, spec in table.items())


def _mcp_server(name: str, spec: Any, where: str) -> McpServer:
    at = f"[mcp.{name}] in {where}"
    if not isinstance(spec, dict):
        raise UsageError(f"mcp.{name} in {where} should be a table, [mcp.{name}], with a command or a url")
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise UsageError(f"{at}: a server's name is letters, digits, - and _")
    unknown = [key for key in spec if key not in MCP_KEYS]
    if unknown:
        raise UsageError(f"{at} has an unknown key {unknown[0]!r} (the keys are {', '.join(MCP_KEYS)})")
    if ("command" in spec) == ("url" in spec):
        raise UsageError(f"{at} needs a command (a server started here) or a url (one running), not both")
    for key in ("command", "url", "cwd"):
        if key in spec and (not isinstance(spec[key], str) or not spec[key].strip()):
            raise UsageError(f"{at}: {key} should be text")
    if "url" in spec and urlparse(spec["url"]).scheme not in ("http", "https"):
        raise UsageError(f"{at}: url should be http:// or https://, not {spec['url']!r}")
    for key, other, why in (
        ("env", "url", "env is for a server started here (command); a url's server has its own"),
        ("headers", "command", "headers are for a url; a command's server is not spoken to over HTTP"),
    ):
        if key in spec and other in spec:
            raise UsageError(f"{at}: {why}")
    timeout = spec.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise UsageError(f"{at}: timeout should be seconds, more than 0 and at most 600")
    return McpServer(
        name,
        command=spec.get("command"),
        args=_texts(spec, "args", at),
        url=spec.get("url"),
        env=_table(spec, "env", at),
        headers=_table(spec, "headers", at),
        cwd=spec.get("cwd"),
        tools=_texts(spec, "tools", at) if "tools" in spec else None,
        confirm=_texts(spec, "confirm", at),
        timeout=float(timeout),
    )


def _texts(spec: dict[str, Any], key: str, at: str) -> tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f'{at}: {key} should be a list of text, e.g. {key} = ["a", "b"]')
    return tuple(value)


def _table(spec: dict[str, Any], key: str, at: str) -> tuple[tuple[str, str], ...]:
    value = spec.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UsageError(f'{at}: {key} should be a table of text, e.g. {key} = {{ NAME = "value" }}')
    return tuple(value.items())


SECTIONS: dict[str, tuple[str, type]] = {
    # attribute of Config: (the --help group, the section)
    "general": ("general", General),
    "stt": ("speech to text", SpeechToText),
    "llm": ("language model", LanguageModel),
    "tts": ("voice", Speech),
    "io": ("input and output", InputOutput),
    "turns": ("turns and speed", Turns),
    "wake": ("wake word", WakeUp),
    "tools": ("tools", Tools),
}


def options() -> Iterator[tuple[str, str, Option]]:
    """(section, field, Option) for every setting, in the order of --help."""
    for section, (_, cls) in SECTIONS.items():
        for f in dataclasses.fields(cls):
            yield section, f.name, f.metadata["option"]


def by_key() -> dict[str, tuple[str, str, Option]]:
    """The settings by their key (the flag without "--"): what a config file may set."""
    return {option.key: (section, name, option) for section, name, option in options()}


@dataclass(frozen=True)
class Config:
    """Every setting in effect, by section, and where each came from."""

    general: General = field(default_factory=General)
    stt: SpeechToText = field(default_factory=SpeechToText)
    llm: LanguageModel = field(default_factory=LanguageModel)
    tts: Speech = field(default_factory=Speech)
    io: InputOutput = field(default_factory=InputOutput)
    turns: Turns = field(default_factory=Turns)
    wake: WakeUp = field(default_factory=WakeUp)
    tools: Tools = field(default_factory=Tools)
    mcp: tuple[McpServer, ...] = ()  # the config file's [mcp.NAME] tables
    # "section.field" -> "the command line" or "the config file"; the rest are defaults
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls,
        given: dict[str, dict[str, Any]],
        sources: dict[str, str] | None = None,
        mcp: tuple[McpServer, ...] = (),
    ) -> Config:
        """A config from the values given for each section (the rest are the defaults)."""
        sections = {name: SECTIONS[name][1](**given.get(name, {})) for name in SECTIONS}
        return cls(**sections, mcp=mcp, sources=dict(sources or {}))

    def source(self, section: str, name: str) -> str:
        return self.sources.get(f"{section}.{name}", "default")

    @property
    def preset(self) -> Platform:
        return PLATFORMS[self.general.platform]

    @property
    def tts_engine(self) -> str:
        """--tts, or the platform's engine."""
        return self.tts.engine or self.preset.tts

    @property
    def interactive(self) -> bool:
        return not self.io.text and not self.io.inputs

    @property
    def transcript_path(self) -> Path | None:
        """Where turns are written: --transcript, else the file --resume continues."""
        return self.io.transcript or self.io.resume

    @property
    def speaks(self) -> bool:
        """Whether replies are synthesized at all (something will hear or keep them)."""
        return self.tts_engine != "none" and (self.io.play or self.io.save_audio is not None)

    @property
    def cancels_echo(self) -> bool:
        """Whether the microphone's stream is echo-cancelled: hands-free, with replies on speakers."""
        return self.turns.vad and self.turns.aec and self.io.play and self.tts_engine != "none"

    def check(self) -> None:
        """Settings that are each fine but make no sense together: UsageError, before anything loads."""
        io, llm, turns = self.io, self.llm, self.turns
        if io.text and io.inputs:
            raise UsageError("--text and --input are two different modes: use one")
        if llm.context - llm.max_tokens < MIN_PROMPT_ROOM:
            raise UsageError(
                f"--max-tokens {llm.max_tokens} leaves no room for the prompt in --context {llm.context}: "
                f"lower --max-tokens, or raise --context (the prompt needs at least {MIN_PROMPT_ROOM} tokens)"
            )
        if llm.engine == "openai" and not llm.url:
            raise UsageError(
                "--llm openai needs --llm-url, e.g. http://127.0.0.1:11434/v1 (ollama), "
                "http://127.0.0.1:4891/v1 (GPT4All Desktop) or http://127.0.0.1:8080/v1 (llama-server)"
            )
        if llm.url and llm.engine != "openai":
            raise UsageError("--llm-url is for --llm openai: add --llm openai, or leave --llm-url out")
        for stage, engine, url, example in (
            ("stt", self.stt.engine, self.stt.url, "8000/v1 (speaches)"),
            ("tts", self.tts.engine, self.tts.url, "8880/v1"),
        ):
            if engine == "openai" and not url:
                raise UsageError(f"--{stage} openai needs --{stage}-url, e.g. http://127.0.0.1:{example}")
            if url and engine != "openai":
                raise UsageError(
                    f"--{stage}-url is for --{stage} openai: add --{stage} openai, or leave --{stage}-url out"
                )
        if turns.barge_in and not turns.vad:
            raise UsageError("--barge-in interrupts a reply by speaking, in hands-free mode: add --vad")
        if not turns.speculate and not self.interactive:
            raise UsageError(
                "--no-speculate is about turns spoken into the microphone: leave it out with --text or "
                "--input"
            )
        for flag, value in (("--silence-ms", turns.silence_ms), ("--turn-model", turns.turn_model)):
            if value is not None and not turns.vad:
                raise UsageError(f"{flag} says when a hands-free turn ends: add --vad, or leave {flag} out")
        self._check_wake()

    def _check_wake(self) -> None:
        wake = self.wake
        if wake.wake is not None and wake.wake_phrase is not None:
            raise UsageError("--wake and --wake-phrase are two ways to wake it: use one")
        if wake.on and not self.turns.vad:
            flag = "--wake" if wake.wake is not None else "--wake-phrase"
            raise UsageError(f"{flag} is for hands-free listening: add --vad")
        if not wake.on:
            for name, flag in (("follow_up", "--follow-up"), ("chime", "--no-chime")):
                if self.source("wake", name) == "the command line":
                    raise UsageError(f"{flag} is about the wake word: add --wake NAME or --wake-phrase TEXT")


# ------------------------------------------------------------------ the command line, made from the fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument for each setting, in groups by section. Nothing is set unless given (so that the
    config file and the defaults can be told apart from the command line): see from_namespace()."""

    def typed(option: Option) -> Callable[[str], Any]:
        def parse(text: str) -> Any:
            try:
                return option.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parse.__name__ = option.type.__name__  # what argparse names in its own messages
        return parse

    for section, (title, _) in SECTIONS.items():
        group = parser if section == "general" else parser.add_argument_group(title)
        for name, option in (
            (f.name, f.metadata["option"]) for f in dataclasses.fields(SECTIONS[section][1])
        ):
            dest = f"{section}.{name}"
            flags = ["-v", option.flag] if option.flag == "--verbose" else [option.flag]
            common: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": option.help}
            if option.kind == "on":
                group.add_argument(*flags, action="store_true", **common)
            elif option.kind == "off":
                group.add_argument(*flags, action="store_false", **common)
            elif option.kind == "on-off":
                group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
            else:
                choices = "{" + ",".join(option.choices) + "}" if option.choices else None
                group.add_argument(
                    *flags,
                    type=typed(option),
                    metavar=option.metavar or choices or option.key.upper(),
                    action="append" if option.kind == "list" else "store",
                    **common,
                )


def from_namespace(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings given on the command line, by section."""
    given: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        section, _, name = dest.partition(".")
        if section in SECTIONS and name:
            given.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
    return given


def file_value(key: str, value: Any, where: str) -> tuple[str, str, Any]:
    """A config file's value for this key: (section, field, value), or UsageError saying what is
    wrong, as the flag's own error would."""
    known = by_key()
    if key not in known and key.replace("_", "-") in known:
        key = key.replace("_", "-")
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (the keys are the flags without --)"
        raise UsageError(f"{where} has an unknown key {key!r}{hint}")
    section, name, option = known[key]
    at = f"{key} in {where}"
    if option.kind in ("on", "off", "on-off"):
        if not isinstance(value, bool):
            raise UsageError(f"{at} is {value!r}: use true or false")
        return section, name, (not value) if option.kind == "off" else value
    items = value if option.kind == "list" and isinstance(value, list) else [value]
    parsed = []
    for item in items:
        if isinstance(item, (bool, dict, list)):
            raise UsageError(f"{at} is {item!r}: give it as on the command line, e.g. {option.flag} VALUE")
        try:
            parsed.append(option.parse(str(item)))
        except ValueError as exc:
            raise UsageError(f"{at}: {exc}") from None
    return section, name, tuple(parsed) if option.kind == "list" else parsed[0]


def shown(section: str, name: str, option: Option, value: Any) -> Any:
    """The value as its key takes it (an "off" flag's key is true when the setting is off)."""
    return (not value) if option.kind == "off" else value
