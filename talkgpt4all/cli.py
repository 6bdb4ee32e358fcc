"""The command line: flags (declared in settings.py) and the config file -> a checked Config -> app.run;
every error -> one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from talkgpt4all import __version__, settings
from talkgpt4all.config import Platform, check_platform
from talkgpt4all.errors import ExitCode, TalkError, UsageError, one_line

log = logging.getLogger("talkgpt4all")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line that says where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"error: {one_line(message)} (see: python chat.py --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The settings' flags (settings.py), and the flags that do something once and exit."""
    p = Parser(
        description="Talk with a local LLM: press Enter, speak, press Enter again; hear the answer.",
        epilog="Headless: --input FILE (repeatable) or --text (lines on stdin). See README.md.",
    )
    settings.add_arguments(p)
    p.add_argument(
        "--build-binary",
        action="store_true",
        help="compile llama.cpp's server from source into bin/ (needs cmake and a C++ compiler), then exit",
    )
    p.add_argument("--list-models", action="store_true", help="list the GGUF models here and the short names")
    p.add_argument("--list-voices", action="store_true", help="list each speech engine's voices and exit")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--list-tools", action="store_true", help="list the tools the model may be given and exit")
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
    p.add_argument("--version", action="version", version=f"talkGPT4All {__version__}")
    return p


def build_config(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[settings.Config, Path, argparse.Namespace]:
    """The settings in effect: the defaults, then the config file (--config, else the default one),
    then the flags. A mistake in either is a usage error (exit 2)."""
    from talkgpt4all import configfile

    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config", type=Path)
    named = first.parse_known_args(argv)[0].config
    path = named or configfile.default_path()
    try:
        from_file, servers = configfile.load(path, explicit=named is not None)
    except UsageError as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    from_flags = settings.from_namespace(args)
    given: dict[str, dict[str, object]] = {}
    sources: dict[str, str] = {}
    for origin, values in (("the config file", from_file), ("the command line", from_flags)):
        for section, fields in values.items():
            given.setdefault(section, {}).update(fields)
            sources.update({f"{section}.{name}": origin for name in fields})
    return settings.Config.build(given, sources, servers), path, args


def configure(argv: list[str]) -> settings.Config:
    """The checked settings for these arguments (for a program that runs app.run itself: the benchmarks,
    the tests). A usage error exits 2, as on the command line."""
    parser = build_parser()
    config, _, _ = build_config(parser, argv)
    try:
        config.check()
    except UsageError as exc:
        parser.error(str(exc))
    return config


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


class _SafeFormatter(logging.Formatter):
    """Log lines with nothing a terminal would run in them (they may quote a server or a file)."""

    def format(self, record: logging.LogRecord) -> str:
        from talkgpt4all.text import clean

        return clean(super().format(record))


def _setup_logging(verbose: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("%(levelname)s: %(message)s" if debug else "note: %(message)s"))
    root = logging.getLogger("talkgpt4all")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    root.propagate = False
    # huggingface_hub announces each retry of a download; our own line says what went wrong.
    logging.getLogger("huggingface_hub").setLevel(logging.DEBUG if debug else logging.ERROR)


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


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    config, config_path, args = build_config(parser, argv)
    if args.print_config:
        from talkgpt4all.configfile import render

        print(render(config, config_path))
        return ExitCode.OK
    try:
        config.check()
    except UsageError as exc:
        parser.error(str(exc))
    debug = config.general.debug
    _setup_logging(config.general.verbose, debug)
    _one_line_thread_errors(debug)
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            _quit_on(signum)
    try:
        return _act(args, config)
    except TalkError as exc:
        if debug:
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
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} "
            "(run again with --debug to see where, and please report it)",
            file=sys.stderr,
        )
        return ExitCode.ERROR


def _act(args: argparse.Namespace, config: settings.Config) -> int:
    """What the command line asks for: a list, a build, or the conversation."""
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
    if args.list_tools:
        from talkgpt4all.tools.builtin import list_tools
        from talkgpt4all.tools.mcp import list_servers

        print(list_tools(config.tools.names))
        print("\n".join(list_servers(config.mcp)))
        return ExitCode.OK
    preset = check_platform(config.general.platform)
    if args.build_binary:
        return _build_binary(preset)
    from talkgpt4all.app import run

    return run(config)
