"""Hands-free turns: Silero VAD decides when the user starts and stops speaking.

The Silero VAD model (v6, ONNX) ships inside faster-whisper's package as an asset, so nothing is
downloaded; it is run here with onnxruntime directly. Everything here counts
in audio time (samples), never wall time, so it behaves the same on a slow machine and in tests.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE

log = logging.getLogger("talkgpt4all")

CHUNK = 512  # samples per VAD step: 32 ms at 16 kHz, the window Silero v5+ is trained on
KEPT_PAUSE_MS = 150  # of the pause that ends an utterance, the part it keeps
PREROLL_MARGIN = 3  # chunks of a barge-in's pre-roll kept before the first that stood out of the echo
PAUSE_MARGIN = 0.15  # once speaking, a probability this far under the threshold is a pause
_CONTEXT = 64  # samples of the previous chunk Silero sees before each new one


@dataclass(frozen=True)
class VadOptions:
    silence_ms: int = 500  # without a turn model: this much silence after speech ends the turn
    # With a turn model: after each of these pauses it is asked whether the turn sounds finished; the
    # first yes ends the turn, and an unfinished one waits for the speaker up to unfinished_ms. Measured
    # on the benchmark's questions and on cut sentences: Smart Turn grows surer of a finished question
    # with a little more silence (piper's "Why is the sky blue?": 0.27 after 200 ms, 0.70 after 400 ms),
    # but asked after 600 ms it also takes a real speaker's cut sentence for finished (0.63).
    turn_checks_ms: tuple[int, ...] = (200, 400)
    unfinished_ms: int = 1500
    # With the pause's transcript (hands-free speculation), the first check waits for it, and the words
    # count both ways (endpoint.py): words that cannot end a sentence wait up to unfinished_ms whatever
    # the audio says; words that read as a whole sentence end the turn after finished_ms even when the
    # audio model is unsure. Not sooner: Whisper writes a cut "Tell me about the" as "Tell me about it.",
    # and a speaker's pause in mid-sentence lasts 0.6 s and more (at 600 ms, the device test's 0.6 s
    # pause was a race between the user going on and the reply's first sound).
    finished_ms: int = 800
    complete_probability: float = 0.5
    # A pause this long is when a turn may be over: the listener starts on it speculatively (speech to
    # text, the model's prefill), and drops that work if the user speaks on.
    speculate_ms: int = 64
    threshold: float = 0.5  # speech probability that counts as speech
    min_speech_ms: int = 160  # speech must last this long to start a turn: clicks and bumps don't
    # While the speakers play (echo-cancelled, with some residue left), a turn start interrupts the
    # reply (barge-in), and needs stronger evidence: a surer probability, on pieces where the echo
    # canceller finds more than echo (the listener's over_echo). Tuned on bench/echo.py's recordings:
    # no false start in the first, unlearnt second of a reply; a real one 160 to 210 ms in.
    echo_threshold: float = 0.7
    echo_min_speech_ms: int = 160
    preroll_ms: int = 320  # audio kept from before the start, so the first syllable is not cut
    # Over a reply, how far back a barge-in's voice is looked for: the canceller may find a voice
    # under the echo only a while into it (bench/echo.py measured it as late as 0.63 s; the device
    # barge-in test, 1.25 s into espeak-ng's question over piper's reply), and the voice's start, in the
    # pre-roll, is the run of speech before.
    echo_preroll_ms: int = 2000
    max_turn_s: float = 60.0  # a turn that never pauses is ended here

    def chunks(self, ms: float) -> int:
        return max(1, round(ms * SAMPLE_RATE / 1000 / CHUNK))


SILERO_FILE = "silero_vad_v6.onnx"  # in faster_whisper.utils.get_assets_path() (faster-whisper 1.2.1)


def silero_path() -> str:
    import os

    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), SILERO_FILE)


class SileroVad:
    """Streaming speech probability, one CHUNK at a time, keeping Silero's recurrent state."""

    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4
        self._session = ort.InferenceSession(
            silero_path(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        window = np.concatenate([self._context, chunk.astype(np.float32, copy=False)])[None]
        out, self._h, self._c = self._session.run(None, {"input": window, "h": self._h, "c": self._c})
        self._context = chunk[-_CONTEXT:]
        return float(np.asarray(out).reshape(-1)[0])


class Segmenter:
    """Cuts a stream of CHUNK-sample pieces into utterances.

    feed() returns the whole utterance (pre-roll included) once it has ended, else None. on_start is
    called when speech has lasted min_speech_ms: the moment a turn (or a barge-in) begins.

    on_pause(audio) is called when a pause in speech has lasted speculate_ms, with the utterance as it
    would be if the turn ended there; on_resume() when speech goes on after such a pause. Whatever
    on_pause started is then stale. The utterance feed() returns in the end begins with the audio
    the last on_pause was given, and the rest of it is that pause.

    The end comes after a pause of silence_ms, or, with a turn model (the probability that a turn is
    complete, from its audio), at the first of turn_checks_ms where the turn sounds finished, and after
    unfinished_ms if it never does.

    words() is the transcript of the pause so far, once there is one (None until then): with a turn
    model, the first check is made when it comes (from the first of turn_checks_ms on), and the last of
    them in any case. Words that cannot end a sentence hold the turn open up to unfinished_ms; words that
    read as a finished sentence end it at finished_ms even if the audio model never says so.
    """

    def __init__(
        self,
        options: VadOptions | None = None,
        vad: Callable[[np.ndarray], float] | None = None,
        on_start: Callable[[], None] | None = None,
        turn: Callable[[np.ndarray], float] | None = None,
        on_pause: Callable[[np.ndarray], None] | None = None,
        on_resume: Callable[[], None] | None = None,
        words: Callable[[], str | None] | None = None,
    ) -> None:
        self.options = options or VadOptions()
        self.words = words
        self.vad = vad or SileroVad()
        self.on_start = on_start
        self.turn = turn
        self.on_pause, self.on_resume = on_pause, on_resume
        # Of the last chunk fed: the speakers may be heard in it (so a start needs more), and whether the
        # echo canceller found more than echo in it.
        self.echo = False
        self.over_echo = True
        self.samples_seen = 0  # audio time, in samples, of everything fed so far
        # Chunks of the pause that ended the last utterance: it ended (was last voiced) that many chunks
        # before the one that decided it was over.
        self.trailing_chunks = 0
        # on_pause was called and no speech has come since: the next voiced chunk calls on_resume, even
        # after the pause ended the utterance (push-to-talk records on until Enter).
        self._announced = False
        self.reset()

    @property
    def starting(self) -> bool:
        """Speech may be starting: voiced pieces, not yet long enough (min_speech_ms) to be a turn. (Read
        from other threads: a reply about to sound waits to see whether it is the user going on.)"""
        return self._speech is None and bool(self._candidate)

    @property
    def speaking(self) -> bool:
        """An utterance is under way (begun, not yet ended)."""
        return self._speech is not None

    def reset(self) -> None:
        o = self.options
        kept = o.chunks(max(o.preroll_ms, o.echo_preroll_ms))
        self._preroll: deque[np.ndarray] = deque(maxlen=kept)
        # For each pre-roll chunk: whether it may hold the user (False: it was only the speakers' echo),
        # and its speech probability.
        self._preroll_voice: deque[bool] = deque(maxlen=kept)
        self._preroll_probability: deque[float] = deque(maxlen=kept)
        self._candidate_voice: list[bool] = []
        self._candidate_probability: list[float] = []
        self._candidate: list[np.ndarray] = []
        self._speech: list[np.ndarray] | None = None
        self._silent = 0
        self._pause = _Pause()
        if isinstance(self.vad, SileroVad):
            self.vad.reset()

    def feed(self, chunk: np.ndarray, *, echo: bool = False, over_echo: bool = True) -> np.ndarray | None:
        """The next chunk; echo: the speakers may be heard in it, and over_echo: the echo canceller found
        more than their echo in it (see the listener)."""
        o = self.options
        self.echo, self.over_echo = echo, over_echo
        self.samples_seen += len(chunk)
        probability = self.vad(chunk)
        if self._speech is None:
            threshold, needed = (
                (o.echo_threshold, o.echo_min_speech_ms) if self.echo else (o.threshold, o.min_speech_ms)
            )
            voice = self.over_echo or not self.echo
            if probability >= threshold and voice:
                self._resumed()
                self._candidate.append(chunk)
                self._candidate_voice.append(voice)
                self._candidate_probability.append(probability)
                if len(self._candidate) >= o.chunks(needed):
                    self._speech = [*self._preroll_kept(), *self._candidate]
                    self._candidate, self._candidate_voice, self._candidate_probability = [], [], []
                    self._silent = 0
                    if self.on_start:
                        self.on_start()
            else:
                # A blip too short to be speech: it becomes pre-roll, like any other sound.
                self._preroll.extend(self._candidate)
                self._preroll_voice.extend(self._candidate_voice)
                self._preroll_probability.extend(self._candidate_probability)
                self._preroll.append(chunk)
                self._preroll_voice.append(voice)
                self._preroll_probability.append(probability)
                self._candidate, self._candidate_voice, self._candidate_probability = [], [], []
            return None
        self._speech.append(chunk)
        # Hysteresis: once speaking, only a clearly lower probability counts as a pause.
        paused = self._silent
        self._silent = self._silent + 1 if probability < o.threshold - PAUSE_MARGIN else 0
        if self._silent == 0:
            self._pause = _Pause()
        if self._silent == o.chunks(o.speculate_ms) and self.on_pause:
            self._announced = True
            self.on_pause(np.concatenate(self._speech[: self._kept()]))
        elif self._silent == 0 and paused:
            self._resumed()
        too_long = len(self._speech) * CHUNK >= o.max_turn_s * SAMPLE_RATE
        if self._ended() or too_long:
            utterance = np.concatenate(self._speech[: self._kept()])
            self.trailing_chunks = self._silent
            self.reset()
            return utterance
        return None

    def _preroll_kept(self) -> list[np.ndarray]:
        """The pre-roll a turn starts with: its last preroll_ms, with the chunks before the first that
        may hold the user silenced. Over a reply, what came before the user's voice is the reply's echo,
        which is not theirs to be transcribed.

        A barge-in's voice starts further back when the canceller found it late (it damps the start of
        double talk): the run of speech that led up to it is the user's too, and is kept, up to
        echo_preroll_ms."""
        o = self.options
        chunks = list(self._preroll)
        voiced = list(self._preroll_voice)
        window = max(0, len(chunks) - o.chunks(o.preroll_ms))
        first = voiced.index(True, window) if True in voiced[window:] else len(chunks)
        if self.echo:
            probability = list(self._preroll_probability)
            while first > 0 and probability[first - 1] >= o.threshold - PAUSE_MARGIN:
                first -= 1
        # A voice's first, soft sound may not have stood out of the echo yet: PREROLL_MARGIN chunks
        # before it are kept.
        first = max(0, first - PREROLL_MARGIN)
        start = min(first, window)
        return [np.zeros_like(c) for c in chunks[start:first]] + chunks[first:]

    def _resumed(self) -> None:
        if self._announced:
            self._announced = False
            if self.on_resume:
                self.on_resume()

    def _kept(self) -> int:
        """The chunks of speech an utterance ending now keeps: a little of the pause (Whisper likes a
        word's tail intact), never more."""
        assert self._speech is not None
        return len(self._speech) - max(0, self._silent - self.options.chunks(KEPT_PAUSE_MS))

    def _ended(self) -> bool:
        """Whether the pause so far ends the turn."""
        o = self.options
        if self.turn is None:
            return self._silent >= o.chunks(o.silence_ms)
        checks = [o.chunks(ms) for ms in o.turn_checks_ms]
        pause, silent = self._pause, self._silent
        check = silent in checks if self.words is None else silent == max(checks)
        if self.words is not None and pause.words is None and silent >= min(checks):
            pause.words = self.words()
            if pause.words is not None:
                from talkgpt4all.endpoint import finished, unfinished

                pause.held, pause.finished = unfinished(pause.words), finished(pause.words)
                check = True
                log.debug(
                    "words of the pause after %d ms: %r", silent * CHUNK * 1000 // SAMPLE_RATE, pause.words
                )
        if check and not pause.held:
            assert self._speech is not None
            if self.turn(np.concatenate(self._speech)) >= o.complete_probability:
                return True
        if pause.finished and silent >= o.chunks(o.finished_ms):
            return True
        return silent >= o.chunks(o.unfinished_ms)


@dataclass
class _Pause:
    """What is known of the pause under way: its words, once transcribed, and what they say."""

    words: str | None = None
    held: bool = False  # they cannot end a sentence: only unfinished_ms ends the turn
    finished: bool = False  # they read as a whole sentence: finished_ms ends it
