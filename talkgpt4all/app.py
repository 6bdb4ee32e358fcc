"""A session assembled from a Config: engines loaded once, a resumed history, then one loop.

Every component is made under one ExitStack, in the order it is needed, and closed in the reverse order
whatever happens: a later load that fails (a model not found, a device that cannot open) closes what
was already open, the transcript, the speaker and the microphone included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.config import DEFAULT_WHISPER
from talkgpt4all.errors import MissingDependencyError
from talkgpt4all.settings import Config

if TYPE_CHECKING:
    from talkgpt4all.audio import AudioSink
    from talkgpt4all.audio.devices import MicRecorder
    from talkgpt4all.audio.echo import EchoCanceller
    from talkgpt4all.audio.watch import PulseWatch
    from talkgpt4all.conversation import Conversation
    from talkgpt4all.loops import Microphone
    from talkgpt4all.observers import TurnObserver
    from talkgpt4all.pipeline import Engines, Session
    from talkgpt4all.status import StatusLine
    from talkgpt4all.tools import Toolbox
    from talkgpt4all.transcript import PastTurn
    from talkgpt4all.tts import Synthesizer
    from talkgpt4all.wake import Wake

log = logging.getLogger("talkgpt4all")


def status(message: str) -> None:
    """Say what slow thing happens now, on a terminal. (Download progress bars print below it.)"""
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def run(
    config: Config,
    keys: IO[bytes] | None = None,
    err: IO[str] | None = None,
    *,
    microphone: Microphone | None = None,
    observers: list[TurnObserver] | None = None,
) -> int:
    """Load the engines, then run the loop the config asks for; the exit code.

    keys is where typed lines come from (default: stdin), err where prompts and status go (stderr). A
    benchmark or a test may bring its own hands-free microphone, and observers of every turn.
    """
    from talkgpt4all import loops
    from talkgpt4all.audio import load_audio
    from talkgpt4all.display import TerminalDisplay
    from talkgpt4all.pipeline import Session
    from talkgpt4all.status import StatusLine
    from talkgpt4all.transcript import TranscriptWriter, read_transcript

    interactive = config.interactive
    keys = keys or (keyboard() if interactive else sys.stdin.buffer)
    err = err or sys.stderr
    started = time.perf_counter()
    own_microphone = interactive and microphone is None
    # Cheap checks first, so that a mistake costs no model loading.
    spoken = [load_audio(path) for path in config.io.inputs]
    past = read_transcript(config.io.resume) if config.io.resume else []
    with contextlib.ExitStack() as stack:
        transcript = None
        if config.transcript_path:
            transcript = TranscriptWriter(config.transcript_path)
            stack.callback(transcript.close)
        line = StatusLine(err) if interactive else None
        if line is not None:
            stack.callback(line.close)
        # Interactive, devices may come and go: where the sound server has our streams is watched.
        watch = device_watch(line) if own_microphone else None
        if watch is not None:
            stack.callback(watch.close)
        wake = make_wake(config, err)  # a wake word model that is not there: said before any loading
        synthesizer = make_voice(config)
        echo = echo_canceller(config) if own_microphone else None
        sinks = make_sinks(config, stack, synthesizer, echo, watch, line)
        turn_model = make_turn_model(config)
        recorder: MicRecorder | None = None
        if own_microphone:
            microphone, recorder = make_microphone(config, stack, echo, watch)
        session = stack.enter_context(
            Session(
                make_engines(config, synthesizer, sinks),
                resumed(config, past),
                TerminalDisplay(config.turns.timings, line),
                config,
                transcript=transcript,
                turns_before=max((turn.turn for turn in past), default=0),
            )
        )
        session.observers += observers or []
        session.wake = wake
        make_tools(config, session, stack, err)
        if threading.current_thread() is threading.main_thread():
            stack.callback(loops.SignalWatch(session.stop).close)
        session.warm_up()
        ready = time.perf_counter() - started
        log.info("ready in %.2f s (models loaded and warmed)", ready)
        if config.turns.timings:
            print(f"⏱ ready in {ready:.2f} s", file=err)
        if config.io.inputs:
            return loops.run_inputs(session, spoken)
        if config.io.text:
            return loops.run_text(session, keys)
        if config.turns.vad:
            assert microphone is not None
            return loops.hands_free(
                session,
                microphone,
                config.turns.vad_options,
                keys,
                err,
                # Unless asked for or against, barge-in is on while the echo is cancelled.
                barge_in=echo is not None if config.turns.barge_in is None else config.turns.barge_in,
                turn=turn_model,
                speculate=config.turns.speculate,
                far=echo.far if echo is not None else None,
                status=line,
                wake=wake,
                chime=chimes(sinks) if config.wake.chime else lambda: None,
            )
        assert recorder is not None
        return loops.push_to_talk(session, recorder, keys, err, speculate=config.turns.speculate, status=line)
    raise AssertionError("unreachable")  # (mypy: every path above returns or raises)


def keyboard() -> IO[bytes]:
    """stdin for the keyboard thread: unbuffered, on a file descriptor of its own. The thread is still
    blocked in a read when the program ends by a signal; sys.stdin's own buffered reader would then hold
    its lock, and Python's shutdown aborts on it ("could not acquire lock ... at interpreter shutdown")."""
    return os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)


def resumed(config: Config, past: list[PastTurn]) -> Conversation:
    """The conversation, with the turns of a resumed transcript."""
    from talkgpt4all.conversation import Conversation

    conversation = Conversation(config.llm.system_prompt)
    for turn in past:
        if turn.reply:  # the same rule as a live turn: kept if anything was said
            conversation.commit(turn.user, turn.reply, cut_off=turn.cut_off, tools=turn.tools)
    if config.io.resume:
        status(f"Resuming the conversation in {config.io.resume}: {len(past)} turns so far.")
    return conversation


def make_voice(config: Config) -> Synthesizer | None:
    """The speech engine, when replies are spoken or written."""
    from talkgpt4all import tts

    return tts.make_synthesizer(config.tts_engine, config.tts) if config.speaks else None


def make_sinks(
    config: Config,
    stack: contextlib.ExitStack,
    synthesizer: Synthesizer | None,
    echo: EchoCanceller | None,
    watch: PulseWatch | None,
    line: StatusLine | None,
) -> list[AudioSink]:
    """Where replies go: a folder of WAV files, and the speaker. There is one way to make a speaker; in
    the interactive loops it also feeds the echo canceller and listens to the device watch."""
    if synthesizer is None:
        return []
    sinks: list[AudioSink] = []
    if config.io.save_audio is not None:
        from talkgpt4all.audio.files import WavFolderSink

        sinks.append(WavFolderSink(config.io.save_audio))
        stack.callback(sinks[-1].close)
    if config.io.play:
        from talkgpt4all.audio.devices import SpeakerSink

        speaker = SpeakerSink(
            config.io.output_device,
            far=echo.far if echo is not None else None,
            watch=watch,
            notify=line.note if line is not None else None,
        )
        stack.callback(speaker.close)
        sinks.append(speaker)
    return sinks


def make_turn_model(config: Config) -> Callable[[np.ndarray], float] | None:
    """Hands-free: the model that hears whether the user has finished (None: a fixed pause)."""
    if not config.turns.vad:
        return None
    from talkgpt4all.audio.turn import SmartTurn, resolve_turn_model

    path = resolve_turn_model(config.turns.turn_model_spec)
    if path is None:
        return None
    model = SmartTurn(path)
    model(np.zeros(SAMPLE_RATE, np.float32))  # warm: the first run is the slow one
    return model


def make_tools(config: Config, session: Session, stack: contextlib.ExitStack, err: IO[str]) -> None:
    """--tools and the config file's MCP servers: the tools given to the session. One line says which,
    one line each server (its tools, or why it did not start), or one line why the model gets none. A
    timer's thread and the servers end with the session (the stack)."""
    names = config.tools.names
    if not names and not config.mcp:
        return
    from talkgpt4all.llm import CallsTools
    from talkgpt4all.tools import Toolbox
    from talkgpt4all.tools.builtin import Timers, time_tool, timer_tool

    chat = session.engines.chat
    why = (
        chat.tool_support() if isinstance(chat, CallsTools) else f"--llm {config.llm.engine} cannot call them"
    )
    if why is not None:
        print(f"Tools are off: {why}. The conversation goes on without them.", file=err)
        return
    box = Toolbox()
    if "time" in names:
        box.add(time_tool())
    if "timer" in names:
        timers = Timers(on_due=session.deliver)
        stack.callback(timers.close)
        box.add(timer_tool(timers))
    if names:
        print(f"Tools: {', '.join(box.tools)}.", file=err)
    if config.mcp:
        _add_mcp_tools(config, box, stack, err)
    session.toolbox = box if box else None


def _add_mcp_tools(config: Config, box: Toolbox, stack: contextlib.ExitStack, err: IO[str]) -> None:
    from talkgpt4all.tools.mcp import McpMissingError, McpServers

    try:
        servers = stack.enter_context(McpServers(config.mcp))
    except McpMissingError as exc:
        print(f"MCP servers are off: {exc}. The conversation goes on without them.", file=err)
        return
    print(f"Starting {len(config.mcp)} MCP server{'' if len(config.mcp) == 1 else 's'}…", file=err)
    for up in servers.start():
        for tool in list(up.tools):
            try:
                box.add(tool)
            except ValueError as exc:  # two tools of one name: the first keeps it
                up.tools.remove(tool)
                up.skipped.append(f"{tool.name} ({exc})")
        print(up.line(), file=err)


def make_wake(config: Config, err: IO[str]) -> Wake | None:
    """--wake: the keyword model (one line says which, and on what runtime); --wake-phrase: the phrase."""
    if not config.wake.on:
        return None
    from talkgpt4all.wake import Gate, Wake, open_spotter

    gate = Gate(config.wake.follow_up)
    if config.wake.wake is None:
        assert config.wake.wake_phrase is not None
        print(f"Wake phrase: '{config.wake.wake_phrase}', found in what Whisper hears.", file=err)
        return Wake(config.wake.wake_phrase, gate)
    spotter = open_spotter(config.wake.wake)
    print(f"Wake word: '{spotter.model.phrase}' (microWakeWord, on {spotter.runtime.name}).", file=err)
    return Wake(spotter.model.phrase, gate, spotter)


def chimes(sinks: list[AudioSink]) -> Callable[[], None]:
    """What plays the wake chime: the speaker, if replies are played."""
    from talkgpt4all.audio.devices import SpeakerSink
    from talkgpt4all.wake import chime

    speaker = next((sink for sink in sinks if isinstance(sink, SpeakerSink)), None)
    if speaker is None:
        return lambda: None
    return lambda: speaker.cue(chime)


def make_microphone(
    config: Config, stack: contextlib.ExitStack, echo: EchoCanceller | None, watch: PulseWatch | None
) -> tuple[Microphone | None, MicRecorder | None]:
    """Hands-free, an always-open (echo-cancelled) stream; push-to-talk, a recorder."""
    from talkgpt4all.audio.devices import MicRecorder, MicStream

    if config.turns.vad:
        stream = MicStream(config.io.input_device, echo=echo, watch=watch)
        stack.callback(stream.close)
        return stream, None
    recorder = MicRecorder(config.io.input_device, watch=watch)
    stack.callback(recorder.close)
    return None, recorder


def make_engines(config: Config, synthesizer: Synthesizer | None, sinks: list[AudioSink]) -> Engines:
    """Speech to text (unless every turn is typed), then the language model."""
    from talkgpt4all import llm, stt
    from talkgpt4all.language import ChineseScript
    from talkgpt4all.pipeline import Engines

    transcriber = None
    if not config.io.text:
        status(f"Loading speech recognition (Whisper {config.stt.model or DEFAULT_WHISPER})…")
        transcriber = ChineseScript(
            stt.make_transcriber(config.stt, config.llm.threads), config.stt.zh_script
        )
    status("Loading the language model…")
    chat = llm.make_chat_model(config.llm, config.preset)
    return Engines(chat, transcriber, synthesizer, sinks)


def device_watch(line: StatusLine | None) -> PulseWatch | None:
    """A watch on the sound server's devices, telling the user on the status line; None without one."""
    from talkgpt4all.audio.watch import PulseWatch

    watch = PulseWatch.start()
    if watch is not None and line is not None:
        watch.notify = line.note
    return watch


def echo_canceller(config: Config) -> EchoCanceller | None:
    """The microphone's echo canceller, when hands-free replies play on speakers; None without one.
    Without the package, one line says so and barge-in stays off unless asked for."""
    if not config.cancels_echo:
        return None
    from talkgpt4all.audio.echo import EchoCanceller, FarEnd

    try:
        return EchoCanceller(FarEnd())
    except MissingDependencyError as exc:
        log.warning("%s", exc)
        return None
