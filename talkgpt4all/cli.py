"""The command line: flags -> Config, engines loaded once, one of three loops, an exit code."""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from talkgpt4all import __version__
from talkgpt4all.config import (
    DEFAULT_SYSTEM_PROMPT,
    PLATFORMS,
    Config,
    Platform,
    check_platform,
    detect_platform,
)
from talkgpt4all.errors import ExitCode, TalkError, one_line

if TYPE_CHECKING:
    import numpy as np

    from talkgpt4all.audio import Recorder
    from talkgpt4all.audio.devices import MicStream
    from talkgpt4all.audio.vad import VadOptions
    from talkgpt4all.pipeline import Session, TurnResult

log = logging.getLogger("talkgpt4all")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    g.add_argument("--stt", default="faster-whisper", help="faster-whisper (default) or openai-whisper")
    g.add_argument(
        "--whisper-model",
        default="base",
        metavar="NAME|PATH",
        help="Whisper size (tiny.en, base, small, ...) or model path (default: base)",
    )
    g.add_argument("--language", help="spoken language code, e.g. en or zh (default: detect)")
    g = p.add_argument_group("language model")
    g.add_argument(
        "--llm",
        default="llama-cpp",
        help="back end: llama-cpp (in process, default), openai (a server), binary (bin/llama-server), "
        "gpt4all",
    )
    g.add_argument(
        "--llm-url",
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
    g.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default: 0.7)")
    g.add_argument("--max-tokens", type=int, default=256, help="longest reply in tokens (default: 256)")
    g.add_argument("--context", type=int, default=4096, help="context window in tokens (default: 4096)")
    g.add_argument("--seed", type=int, default=-1, help="sampling seed (default: random)")
    g.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    g = p.add_argument_group("voice")
    g.add_argument("--tts", help="espeak, say, wsay or none (default: the platform's)")
    g.add_argument("--voice", help="voice name for the speech engine")
    g.add_argument("--rate", type=int, help="speaking rate in words per minute")
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
        type=int,
        default=500,
        metavar="MS",
        help="with --vad, the pause that ends a turn (default: 500)",
    )
    g.add_argument(
        "--barge-in",
        action="store_true",
        help="with --vad, speaking during a reply interrupts it (use headphones: no echo cancelling)",
    )
    g.add_argument(
        "--no-stream",
        action="store_true",
        help="sequential baseline: the whole reply, then all its speech, then playback",
    )
    g.add_argument("--timings", action="store_true", help="print a line of timings under each reply")
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
        tts=args.tts or preset.tts,
        voice=args.voice,
        rate=args.rate,
        inputs=list(args.input),
        text=args.text,
        save_audio=args.save_audio,
        play=not args.no_play,
        transcript=args.transcript,
        input_device=args.input_device,
        output_device=args.output_device,
        vad=args.vad,
        silence_ms=args.silence_ms,
        barge_in=args.barge_in,
        stream=not args.no_stream,
        timings=args.timings,
        debug=args.debug,
    )


class TerminalDisplay:
    """The conversation on stdout: what the user said, then the reply as it is written."""

    def __init__(self, show_timings: bool = False) -> None:
        from rich.console import Console

        self.out = Console(highlight=False, markup=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
        self.show_timings = show_timings
        self._started = False

    def user(self, text: str) -> None:
        self.out.print("You: ", style="bold cyan", end="")
        self.out.print(text)
        self._started = False

    def reply_token(self, text: str) -> None:
        if not self._started:
            self.out.print("AI: ", style="bold green", end="")
            self._started = True
        self.out.print(text, end="")
        self.out.file.flush()

    def reply_end(self, interrupted: bool) -> None:
        if interrupted:
            self.out.print(" [interrupted]", style="dim", end="")
        self.out.print()
        self._started = False

    def notice(self, text: str) -> None:
        self.out.print(text, style="yellow")

    def timings(self, result: TurnResult) -> None:
        if self.show_timings:
            self.err.print(format_timings(result), style="dim")


def format_timings(result: TurnResult) -> str:
    """One line: each stage's time from the end of the user's speech."""
    t = result.timings
    parts = [
        ("stt", t.stt),
        ("first token", t.llm_first_token),
        ("first sentence", t.first_sentence),
        ("first audio", t.first_audio),
        ("total", t.total),
    ]
    shown = " · ".join(f"{name} {value:.2f}" for name, value in parts if value is not None)
    return f"⏱ {shown} s · {result.prompt_tokens} prompt tokens"


def _status(message: str) -> None:
    """Say what slow thing happens now, on a terminal. (Download progress bars print below it.)"""
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def run(config: Config) -> int:
    from talkgpt4all import llm, stt, tts
    from talkgpt4all.audio import AudioSink, load_audio, make_sink
    from talkgpt4all.conversation import Conversation
    from talkgpt4all.pipeline import Session, TranscriptWriter

    started = time.perf_counter()
    # Cheap checks first, so a mistake costs no model loading.
    llm.check_engine(config.llm)
    tts.check_engine(config.tts)
    stt.check_engine(config.stt)
    spoken = [load_audio(path) for path in config.inputs]
    transcript = TranscriptWriter(config.transcript) if config.transcript else None
    synthesizer = tts.make_synthesizer(config.tts, config.voice, config.rate) if config.speaks else None
    sinks: list[AudioSink] = []
    if synthesizer is not None:
        if config.save_audio is not None:
            sinks.append(make_sink("wav", str(config.save_audio)))
        if config.play:
            sinks.append(make_sink("device", config.output_device))
    interactive = not config.text and not config.inputs
    microphone: Recorder | MicStream | None = None
    if interactive:
        from talkgpt4all.audio.devices import MicRecorder, MicStream

        microphone = MicStream(config.input_device) if config.vad else MicRecorder(config.input_device)

    transcriber = None
    if not config.text:
        _status(f"Loading speech recognition (Whisper {config.whisper_model})…")
        transcriber = stt.make_transcriber(config.stt, config.whisper_model, config.threads)
    _status("Loading the language model…")
    settings = llm.LLMSettings(
        config.model,
        config.context,
        config.threads,
        config.seed,
        gpu=config.platform.metal,
        url=config.llm_url,
        api_key=config.llm_api_key,
        binary=config.binary,
        binary_name=config.platform.binary,
    )
    chat = llm.make_chat_model(config.llm, settings)

    session = Session(
        chat,
        Conversation(config.system_prompt),
        TerminalDisplay(config.timings),
        transcriber=transcriber,
        synthesizer=synthesizer,
        sinks=sinks,
        transcript=transcript,
        options=llm.GenerationOptions(config.max_tokens, config.temperature, config.seed),
        language=config.language,
        interruptible=interactive,
        stream=config.stream,
    )
    try:
        session.warm_up()
        ready = time.perf_counter() - started
        log.info("ready in %.2f s (models loaded and warmed)", ready)
        if config.timings:
            print(f"⏱ ready in {ready:.2f} s", file=sys.stderr)
        if config.inputs:
            for audio in spoken:
                session.hear(audio, time.perf_counter())
        elif config.text:
            for line in sys.stdin:
                if line.strip():
                    session.reply(line.strip(), time.perf_counter())
        elif config.vad:
            from talkgpt4all.audio.devices import MicStream
            from talkgpt4all.audio.vad import VadOptions

            assert isinstance(microphone, MicStream)
            return _hands_free(session, microphone, VadOptions(silence_ms=config.silence_ms), config.barge_in)
        else:
            assert microphone is not None and not isinstance(microphone, MicStream)
            return _talk(session, microphone)
    finally:
        session.close()
    return ExitCode.OK


class Keyboard:
    """Reads lines from stdin on its own thread. While a reply is spoken, Enter interrupts it."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._on_enter: Callable[[], None] | None = None
        threading.Thread(target=self._read, name="keyboard", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            on_enter = self._on_enter
            if on_enter is not None:
                on_enter()
            else:
                self._lines.put(line)
        self._lines.put(None)

    def readline(self) -> str | None:
        """The next line typed, or None at end of input (Ctrl-D)."""
        while True:
            try:
                return self._lines.get(timeout=0.1)  # short waits, so Ctrl-C gets through
            except queue.Empty:
                continue

    @contextmanager
    def interrupts(self, session: Session) -> Iterator[None]:
        """While inside, Enter stops the reply instead of being read."""
        self._on_enter = session.stop
        try:
            yield
        finally:
            self._on_enter = None


PROMPT = "Press Enter to talk (or type a message): "


def _record(rec: Recorder, keyboard: Keyboard) -> tuple[np.ndarray, float]:
    """Record until Enter, with a live indicator on stderr. Returns the audio and when speech ended."""
    err = sys.stderr
    done = threading.Event()

    def indicator() -> None:
        while not done.wait(0.1):
            err.write(f"\r\x1b[31m●\x1b[0m Recording {rec.elapsed:4.1f} s (Enter to stop) ")
            err.flush()

    rec.start()
    thread = threading.Thread(target=indicator, daemon=True)
    thread.start()
    try:
        keyboard.readline()
    finally:
        speech_end = time.perf_counter()
        done.set()
        thread.join()
        audio = rec.stop()
    err.write("\r\x1b[2K")
    return audio, speech_end


def _talk(session: Session, rec: Recorder) -> int:
    """Push-to-talk: Enter starts and stops recording; a typed line is sent as text.

    During a reply, Enter or Ctrl-C stops it; Ctrl-C or Ctrl-D at the prompt quits.
    """
    err = sys.stderr
    keyboard = Keyboard()
    err.write("Ready. Press Enter, speak, then press Enter again. Enter or Ctrl-C stops a reply.\n")
    while True:
        err.write(PROMPT)
        err.flush()
        line = keyboard.readline()
        if line is None:
            return ExitCode.OK
        try:
            if line.strip():
                with keyboard.interrupts(session):
                    session.reply(line.strip(), time.perf_counter())
                continue
            audio, speech_end = _record(rec, keyboard)
            with keyboard.interrupts(session):
                session.hear(audio, speech_end)
        except TalkError as exc:
            # One failed turn does not end the conversation.
            err.write(f"error: {one_line(str(exc))}\n")


def _hands_free(session: Session, mic: MicStream, options: VadOptions, barge_in: bool) -> int:
    """Turns start when the user speaks and end at a pause. Enter or Ctrl-C stops a reply."""
    from talkgpt4all.audio.vad import Segmenter

    err = sys.stderr
    turns: queue.Queue[tuple[np.ndarray, float]] = queue.Queue()
    replying = threading.Event()

    def speech_started() -> None:
        if replying.is_set():
            session.stop()  # barge-in: only reached with --barge-in
        else:
            err.write("\r\x1b[2K\x1b[31m●\x1b[0m Hearing you…")
            err.flush()

    segmenter = Segmenter(options, on_start=speech_started)

    def listen() -> None:
        while True:
            chunk = mic.read()
            if chunk is None:
                continue
            if replying.is_set() and not barge_in:
                # The speakers' own sound must not become a turn: without --barge-in, playback is deaf time.
                segmenter.reset()
                continue
            utterance = segmenter.feed(chunk)
            if utterance is not None:
                turns.put((utterance, time.perf_counter()))

    mic.start()
    threading.Thread(target=listen, name="vad", daemon=True).start()
    keyboard = Keyboard()
    err.write("Ready. Speak whenever you like; a pause ends your turn. Ctrl-C quits.\n")
    while True:
        err.write("\r\x1b[2K\x1b[32m●\x1b[0m Listening…")
        err.flush()
        while True:
            try:
                audio, speech_end = turns.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        err.write("\r\x1b[2K")
        replying.set()
        try:
            with keyboard.interrupts(session):
                session.hear(audio, speech_end)
        except TalkError as exc:
            err.write(f"error: {one_line(str(exc))}\n")
        finally:
            replying.clear()


def _list_models() -> int:
    from talkgpt4all.models import find_ggufs

    found = find_ggufs()
    if not found:
        print('No GGUF models found. Put one in models/, or see README.md, "A real model".')
    for where, paths in found.items():
        print(f"{where}:")
        for path in paths:
            print(f"  {path}  ({path.stat().st_size / 2**30:.2f} GB)")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.text and args.input:
        parser.error("--text and --input are two different modes: use one")
    _setup_logging(args.verbose, args.debug)
    # A polite kill (SIGTERM) unwinds like Ctrl-C does, so child processes such as llama-server are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if args.list_devices:
            from talkgpt4all.audio.devices import list_devices

            print(list_devices())
            return ExitCode.OK
        if args.list_models:
            return _list_models()
        if args.build_binary:
            return _build_binary(check_platform(args.platform))
        return run(build_config(args))
    except TalkError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return ExitCode.INTERRUPTED
