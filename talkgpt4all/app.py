"""A session assembled from a Config: engines loaded once, a resumed history, then one loop."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, TYPE_CHECKING

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.config import Config
from talkgpt4all.errors import MissingDependencyError

if TYPE_CHECKING:
    from talkgpt4all.audio import AudioSink
    from talkgpt4all.audio.devices import MicRecorder
    from talkgpt4all.audio.echo import EchoCanceller
    from talkgpt4all.audio.vad import VadOptions
    from talkgpt4all.audio.watch import PulseWatch
    from talkgpt4all.loops import Microphone
    from talkgpt4all.pipeline import TurnObserver
    from talkgpt4all.status import StatusLine

log = logging.getLogger("talkgpt4all")


def status(message: str) -> None:
    """Say what slow thing happens now, on a terminal. (Download progress bars print below it.)"""
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def vad_options(config: Config) -> VadOptions:
    """When a hands-free turn ends. With a turn model, --silence-ms is the longest wait for an
    unfinished sentence; without one, the pause that ends every turn."""
    from talkgpt4all.audio.vad import VadOptions

    if config.silence_ms is None:
        return VadOptions()
    return VadOptions(silence_ms=config.silence_ms, unfinished_ms=config.silence_ms)


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
    from talkgpt4all.status import StatusLine

    keys = keys or sys.stdin.buffer
    err = err or sys.stderr
    interactive = not config.text and not config.inputs
    line = StatusLine(err) if interactive else None
    # Interactive, devices may come and go: where the sound server has our streams is watched.
    watch = device_watch(line) if interactive and microphone is None else None
    try:
        return _run(config, keys, err, microphone, observers, line, watch)
    finally:
        if watch is not None:
            watch.close()


def _run(
    config: Config,
    keys: IO[bytes],
    err: IO[str],
    microphone: Microphone | None,
    observers: list[TurnObserver] | None,
    line: StatusLine | None,
    watch: PulseWatch | None,
) -> int:
    from talkgpt4all import llm, loops, stt, tts
    from talkgpt4all.audio import load_audio, make_sink
    from talkgpt4all.conversation import Conversation
    from talkgpt4all.display import TerminalDisplay
    from talkgpt4all.language import ChineseScript
    from talkgpt4all.pipeline import Session
    from talkgpt4all.transcript import TranscriptWriter, read_transcript

    started = time.perf_counter()
    # Cheap checks first, so a mistake costs no model loading.
    llm.check_engine(config.llm)
    tts.check_engine(config.tts)
    stt.check_engine(config.stt)
    spoken = [load_audio(path) for path in config.inputs]
    past = read_transcript(config.resume) if config.resume else []
    transcript = TranscriptWriter(config.transcript_path) if config.transcript_path else None
    synthesizer = None
    if config.speaks:
        speech = tts.TTSSettings(
            config.voice, config.rate, config.tts_url, config.tts_api_key, config.tts_model
        )
        synthesizer = tts.make_synthesizer(config.tts, speech)
    interactive = line is not None
    echo = echo_canceller(config) if interactive and microphone is None else None
    sinks: list[AudioSink] = []
    if synthesizer is not None:
        if config.save_audio is not None:
            sinks.append(make_sink("wav", str(config.save_audio)))
        if config.play:
            if interactive:
                from talkgpt4all.audio.devices import SpeakerSink

                far = echo.far if echo is not None else None
                notify = line.note if line is not None else None
                sinks.append(SpeakerSink(config.output_device, far=far, watch=watch, notify=notify))
            else:
                sinks.append(make_sink("device", config.output_device))
    turn_model = None
    if config.vad:
        from talkgpt4all.audio.turn import SmartTurn, resolve_turn_model

        turn_path = resolve_turn_model(config.turn_model)
        if turn_path is not None:
            turn_model = SmartTurn(turn_path)
            turn_model(np.zeros(SAMPLE_RATE, np.float32))  # warm: the first run is the slow one
    recorder: MicRecorder | None = None
    if interactive and microphone is None:
        from talkgpt4all.audio.devices import MicRecorder, MicStream

        if config.vad:
            microphone = MicStream(config.input_device, echo=echo, watch=watch)
        else:
            recorder = MicRecorder(config.input_device, watch=watch)

    transcriber = None
    if not config.text:
        status(f"Loading speech recognition (Whisper {config.whisper})…")
        transcriber = ChineseScript(
            stt.make_transcriber(
                config.stt,
                stt.STTSettings(config.whisper_model, config.threads, config.stt_url, config.stt_api_key),
            ),
            config.zh_script,
        )
    status("Loading the language model…")
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
        context_shift=config.context_shift,
    )
    chat = llm.make_chat_model(config.llm, settings)

    conversation = Conversation(config.system_prompt)
    for turn in past:
        if turn.reply:  # the same rule as a live turn: kept if anything was said
            conversation.commit(turn.user, turn.reply, cut_off=turn.cut_off)
    if config.resume:
        status(f"Resuming the conversation in {config.resume}: {len(past)} turns so far.")
    session = Session(
        chat,
        conversation,
        TerminalDisplay(config.timings, line),
        transcriber=transcriber,
        synthesizer=synthesizer,
        sinks=sinks,
        transcript=transcript,
        options=llm.GenerationOptions(config.max_tokens, config.temperature, config.seed),
        language=config.language,
        interruptible=interactive,
        stream=config.stream,
        turns_before=max((turn.turn for turn in past), default=0),
        zh_script=config.zh_script,
    )
    session.observers += observers or []
    try:
        session.warm_up()
        ready = time.perf_counter() - started
        log.info("ready in %.2f s (models loaded and warmed)", ready)
        if config.timings:
            print(f"⏱ ready in {ready:.2f} s", file=err)
        if config.inputs:
            return loops.run_inputs(session, spoken)
        if config.text:
            return loops.run_text(session, keys)
        if config.vad:
            assert microphone is not None
            return loops.hands_free(
                session,
                microphone,
                vad_options(config),
                keys,
                err,
                # Unless asked for or against, barge-in is on while the echo is cancelled.
                barge_in=echo is not None if config.barge_in is None else config.barge_in,
                turn=turn_model,
                speculate=config.speculate,
                far=echo.far if echo is not None else None,
                status=line,
            )
        assert recorder is not None
        return loops.push_to_talk(session, recorder, keys, err, speculate=config.speculate, status=line)
    finally:
        session.close()


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
