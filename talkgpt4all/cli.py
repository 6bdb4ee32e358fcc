"""The command line: flags -> a checked Config -> app.run; every error -> one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from talkgpt4all import __version__
from talkgpt4all.config import (
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_WHISPER,
    PLATFORMS,
    Config,
    Platform,
    check_platform,
    detect_platform,
)
from talkgpt4all.errors import ExitCode, TalkError, UsageError, one_line

log = logging.getLogger("talkgpt4all")

MIN_CONTEXT = 128  # tokens: below this no system prompt and reply fit
MIN_PROMPT_ROOM = 64  # tokens the prompt must keep beside --max-tokens


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line that says where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"error: {one_line(message)} (see: python chat.py --help)\n")


def number(kind: type, low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a number of that kind within [low, high], checked when the flag is parsed."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{text} is too small: use at least {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is too large: use at most {high}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its own messages
    return parse


def http_url(text: str) -> str:
    parts = urlparse(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        description="Talk with a local LLM: press Enter, speak, press Enter again; hear the answer.",
        epilog="Headless: --input FILE (repeatable) or --text (lines on stdin). See README.md.",
    )
    p.add_argument(
        "--platform",
        choices=sorted(PLATFORMS),
        help="preset (default: detected: %(default)s)",
        default=detect_platform(),
    )
    g = p.add_argument_group("speech to text")
    g.add_argument(
        "--stt",
        default="faster-whisper",
        help="faster-whisper (default), openai-whisper, or openai: a server (--stt-url)",
    )
    g.add_argument(
        "--stt-url",
        type=http_url,
        metavar="URL",
        help="with --stt openai, the server's API, e.g. http://127.0.0.1:8000/v1 (speaches); "
        "--whisper-model is then the server's model name (default: whisper-1)",
    )
    g.add_argument("--stt-api-key", metavar="KEY", help="with --stt openai, the server's key")
    g.add_argument(
        "--whisper-model",
        metavar="NAME|PATH",
        help=f"Whisper size (tiny.en, base, small, ...) or model path (default: {DEFAULT_WHISPER})",
    )
    g.add_argument(
        "--language",
        help="the language of every turn, e.g. en or zh (default: each turn's own: what Whisper hears, "
        "or a typed line's script; the reply follows it)",
    )
    g.add_argument(
        "--zh-script",
        choices=["simplified", "traditional"],
        default="simplified",
        help="the characters Chinese is written in, heard and asked for (default: simplified)",
    )
    g = p.add_argument_group("language model")
    g.add_argument(
        "--llm",
        default="llama-cpp",
        help="back end: llama-cpp (in process, default), openai (a server), binary (bin/llama-server), "
        "gpt4all",
    )
    g.add_argument(
        "--llm-url",
        type=http_url,
        metavar="URL",
        help="with --llm openai: the server's API, e.g. http://127.0.0.1:11434/v1 (ollama)",
    )
    g.add_argument(
        "--llm-api-key", metavar="KEY", help="with --llm openai: the server's API key, if it wants one"
    )
    g.add_argument(
        "--binary",
        metavar="PATH",
        help="with --llm binary: the llama.cpp server to run (default: bin/llama-server)",
    )
    g.add_argument(
        "--build-binary",
        action="store_true",
        help="compile llama.cpp's server from source into bin/ (needs cmake and a C++ compiler), then exit",
    )
    g.add_argument(
        "--list-models", action="store_true", help="list the GGUF models found on this machine, then exit"
    )
    g.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="a .gguf path, a file in models/, or owner/repo/file.gguf on Hugging Face "
        "(default: the largest .gguf in models/, else the starter model)",
    )
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="instructions for the model")
    g.add_argument(
        "--temperature",
        type=number(float, 0.0, 2.0),
        default=0.7,
        help="sampling temperature, 0 to 2 (default: 0.7)",
    )
    g.add_argument(
        "--max-tokens",
        type=number(int, 1),
        default=256,
        help="longest reply in tokens (default: 256)",
    )
    g.add_argument(
        "--context",
        type=number(int, MIN_CONTEXT),
        default=4096,
        help="context window in tokens (default: 4096)",
    )
    g.add_argument(
        "--no-context-shift",
        action="store_true",
        help="when old turns are dropped, compute the history again instead of shifting the model's "
        "cache (slower; for comparison)",
    )
    g.add_argument("--seed", type=number(int, -1), default=-1, help="sampling seed (default: random)")
    g.add_argument("--threads", type=number(int, 1, 1024), help="CPU threads (default: all cores)")
    g = p.add_argument_group("voice")
    g.add_argument(
        "--tts",
        help="auto (a piper voice per language where one can be had, else espeak-ng: Linux's default), "
        "espeak, say, wsay, piper, openai (a server) or none (default: the platform's)",
    )
    g.add_argument(
        "--tts-url",
        type=http_url,
        metavar="URL",
        help="with --tts openai, the server's API, e.g. http://127.0.0.1:8880/v1 (Kokoro-FastAPI)",
    )
    g.add_argument("--tts-api-key", metavar="KEY", help="with --tts openai, the server's key")
    g.add_argument(
        "--tts-model", metavar="NAME", help="with --tts openai, the server's model (default: tts-1)"
    )
    g.add_argument(
        "--voice",
        help="the voice, for every reply (default: the engine's, and with piper one per language); "
        "see --list-voices",
    )
    g.add_argument("--list-voices", action="store_true", help="list each speech engine's voices and exit")
    g.add_argument("--rate", type=number(int, 20, 1000), help="speaking rate in words per minute")
    g = p.add_argument_group("input and output")
    g.add_argument(
        "--input",
        action="append",
        type=Path,
        metavar="FILE",
        default=[],
        help="an audio file (wav/flac/mp3) as one spoken turn; repeat for more turns, then exit",
    )
    g.add_argument("--text", action="store_true", help="read typed turns from stdin, one a line, until EOF")
    g.add_argument("--save-audio", type=Path, metavar="DIR", help="write replies to DIR/reply-001.wav, ...")
    g.add_argument("--no-play", action="store_true", help="don't play audio")
    g.add_argument("--transcript", type=Path, metavar="FILE", help="append one JSON line per turn")
    g.add_argument(
        "--resume",
        type=Path,
        metavar="FILE",
        help="continue the conversation in a --transcript file; new turns are appended to it",
    )
    g.add_argument("--input-device", metavar="NAME|INDEX", help="microphone (see --list-devices)")
    g.add_argument("--output-device", metavar="NAME|INDEX", help="speaker (see --list-devices)")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    g = p.add_argument_group("turns and speed")
    g.add_argument(
        "--vad",
        action="store_true",
        help="hands-free: a turn starts when you speak and ends when you pause (default: Enter)",
    )
    g.add_argument(
        "--silence-ms",
        type=number(int, 50, 10_000),
        metavar="MS",
        help="with --vad, the pause that ends a turn (default: 500); with a --turn-model as well, the "
        "longest wait for an unfinished sentence (default: 1500)",
    )
    g.add_argument(
        "--turn-model",
        metavar="NAME|PATH|none",
        help="with --vad, the model that hears whether you have finished (default: Smart Turn v3.2: a "
        "finished sentence ends the turn after 200 ms, an unfinished one waits); none: a fixed pause "
        "(--silence-ms) ends each turn; --silence-ms alone means none",
    )
    g.add_argument(
        "--barge-in",
        action=argparse.BooleanOptionalAction,
        help="with --vad, speaking during a reply interrupts it (default: on while echo cancellation is; "
        "with --no-aec, use headphones)",
    )
    g.add_argument(
        "--aec",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --vad, take the reply's own sound out of what the microphone hears, so you can talk "
        "over it on speakers (default: on)",
    )
    g.add_argument(
        "--no-speculate",
        action="store_true",
        help="wait for the end of a spoken turn before transcribing it (default: speech to text and the "
        "model's prompt start as you pause, and are dropped if you speak on)",
    )
    g.add_argument(
        "--no-stream",
        action="store_true",
        help="sequential baseline: the whole reply, then all its speech, then playback",
    )
    g.add_argument("--timings", action="store_true", help="print a line of timings under each reply")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read settings from this TOML file (default: config.toml in the user config folder; "
        "see --print-config); the keys are the flags without --, and flags win",
    )
    p.add_argument(
        "--print-config", action="store_true", help="show the settings in effect and where each came from"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and from where")
    p.add_argument("--debug", action="store_true", help="show tracebacks and engine logs")
    p.add_argument("--version", action="version", version=f"talkGPT4All {__version__}")
    return p


def build_config(args: argparse.Namespace) -> Config:
    preset = check_platform(args.platform)
    return Config(
        platform=preset,
        stt=args.stt,
        whisper_model=args.whisper_model,
        language=args.language,
        zh_script=args.zh_script,
        stt_url=args.stt_url,
        stt_api_key=args.stt_api_key,
        llm=args.llm,
        model=args.model,
        llm_url=args.llm_url,
        llm_api_key=args.llm_api_key,
        binary=args.binary,
        system_prompt=args.system_prompt,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        context=args.context,
        seed=args.seed,
        threads=args.threads,
        context_shift=not args.no_context_shift,
        tts=args.tts or preset.tts,
        voice=args.voice,
        rate=args.rate,
        tts_url=args.tts_url,
        tts_api_key=args.tts_api_key,
        tts_model=args.tts_model,
        inputs=list(args.input),
        text=args.text,
        save_audio=args.save_audio,
        play=not args.no_play,
        transcript=args.transcript,
        resume=args.resume,
        input_device=args.input_device,
        output_device=args.output_device,
        vad=args.vad,
        silence_ms=args.silence_ms,
        turn_model="none" if args.silence_ms is not None and args.turn_model is None else args.turn_model,
        barge_in=args.barge_in,
        aec=args.aec,
        speculate=not args.no_speculate,
        stream=not args.no_stream,
        timings=args.timings,
        debug=args.debug,
    )


def _list_models() -> int:
    from talkgpt4all.models import catalog_lines, find_ggufs

    print("Recommended (pass the name to --model; downloaded once from Hugging Face):")
    for line in catalog_lines():
        print(f"  {line}")
    found = find_ggufs()
    print()
    if not found:
        print("No GGUF models on this machine yet. Put one in models/, or pass a name above.")
    for where, paths in found.items():
        print(f"{where}:")
        for path in paths:
            print(f"  {path}  ({path.stat().st_size / 2**30:.2f} GB)")
    if found:
        print("Pass any of these paths to --model.")
    return ExitCode.OK


def _build_binary(preset: Platform) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from talkgpt4all.config import BIN_DIR
    from talkgpt4all.llm.build import build_llama_server
    from talkgpt4all.models import cache_dir

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("building llama-server", total=100)

        def progress(step: str, percent: int | None) -> None:
            bar.update(task, description=step, completed=percent or 0)

        path = build_llama_server(BIN_DIR / preset.binary, cache_dir(), progress, metal=preset.metal)
    print(f"built {path}; use it with: python chat.py --llm binary")
    return ExitCode.OK


def _setup_logging(verbose: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if debug else "note: %(message)s"))
    root = logging.getLogger("talkgpt4all")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    root.propagate = False
    # huggingface_hub announces each retry of a download; our own line says what went wrong.
    logging.getLogger("huggingface_hub").setLevel(logging.DEBUG if debug else logging.ERROR)


def check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flags that are each fine but make no sense together: a usage error, before anything loads."""
    if args.text and args.input:
        parser.error("--text and --input are two different modes: use one")
    if args.context - args.max_tokens < MIN_PROMPT_ROOM:
        parser.error(
            f"--max-tokens {args.max_tokens} leaves no room for the prompt in --context {args.context}: "
            f"lower --max-tokens, or raise --context (the prompt needs at least {MIN_PROMPT_ROOM} tokens)"
        )
    if args.llm == "openai" and not args.llm_url:
        parser.error(
            "--llm openai needs --llm-url, e.g. http://127.0.0.1:11434/v1 (ollama), "
            "http://127.0.0.1:4891/v1 (GPT4All Desktop) or http://127.0.0.1:8080/v1 (llama-server)"
        )
    if args.llm_url and args.llm != "openai":
        parser.error("--llm-url is for --llm openai: add --llm openai, or leave --llm-url out")
    for stage, engine, example in (("stt", args.stt, "8000/v1 (speaches)"), ("tts", args.tts, "8880/v1")):
        url = getattr(args, f"{stage}_url")
        if engine == "openai" and not url:
            parser.error(f"--{stage} openai needs --{stage}-url, e.g. http://127.0.0.1:{example}")
        if url and engine != "openai":
            parser.error(
                f"--{stage}-url is for --{stage} openai: add --{stage} openai, or leave --{stage}-url out"
            )
    if args.barge_in and not args.vad:
        parser.error("--barge-in interrupts a reply by speaking, in hands-free mode: add --vad")
    if args.no_speculate and (args.text or args.input):
        parser.error(
            "--no-speculate is about turns spoken into the microphone: leave it out with --text or --input"
        )
    for flag, value in (("--silence-ms", args.silence_ms), ("--turn-model", args.turn_model)):
        if value is not None and not args.vad:
            parser.error(f"{flag} says when a hands-free turn ends: add --vad, or leave {flag} out")


def _quit_on(signum: int) -> None:
    """A polite kill (SIGTERM) or a closed terminal (SIGHUP) unwinds like Ctrl-C does: the turn in progress
    is recorded as interrupted, child processes such as llama-server are stopped, and nothing is printed."""
    signal.signal(signum, lambda *_: sys.exit(128 + signum))


def _one_line_thread_errors(debug: bool) -> None:
    """A thread that dies unexpectedly says so in one line (its traceback only with --debug)."""
    default = threading.excepthook

    def hook(info: threading.ExceptHookArgs) -> None:
        if debug:
            default(info)
            return
        name = info.thread.name if info.thread else "a thread"
        line = f"error: {name} stopped: {info.exc_type.__name__}: {one_line(str(info.exc_value))}"
        with contextlib.suppress(OSError, ValueError):
            print(line, file=sys.stderr)

    threading.excepthook = hook


def _stdout_gone() -> None:
    """stdout was a pipe whose reader quit (e.g. `| head`): stop writing to it, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):  # the reader of our stdout has gone: nothing more to say to it
            _stdout_gone()


def _with_config_file(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[dict[str, str], Path]:
    """Read the config file (--config, else the default one) into the parser's defaults."""
    from talkgpt4all import configfile

    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config", type=Path)
    named = first.parse_known_args(argv)[0].config
    path = named or configfile.default_path()
    try:
        return configfile.apply(parser, configfile.load(path, explicit=named is not None), path), path
    except UsageError as exc:
        parser.error(str(exc))


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    from_file, config_path = _with_config_file(parser, argv)
    args = parser.parse_args(argv)
    if args.print_config:
        from talkgpt4all.configfile import render

        print(render(parser, args, from_file, config_path))
        return ExitCode.OK
    check_combinations(parser, args)
    _setup_logging(args.verbose, args.debug)
    _one_line_thread_errors(args.debug)
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            _quit_on(signum)
    try:
        if args.list_voices:
            from talkgpt4all.tts import list_voices

            print(list_voices())
            return ExitCode.OK
        if args.list_devices:
            from talkgpt4all.audio.devices import list_devices

            print(list_devices())
            return ExitCode.OK
        if args.list_models:
            return _list_models()
        if args.build_binary:
            return _build_binary(check_platform(args.platform))
        from talkgpt4all.app import run

        return run(build_config(args))
    except TalkError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE if isinstance(exc, UsageError) else ExitCode.ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _stdout_gone()
        return ExitCode.ERROR
    except Exception as exc:
        # Anything unforeseen is still one line; --debug shows where it came from.
        if args.debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} "
            "(run again with --debug to see where, and please report it)",
            file=sys.stderr,
        )
        return ExitCode.ERROR
