#!/usr/bin/env python3
"""One hands-free conversation fed by recorded questions in real time, for bench/latency.py's live modes.

The questions go through the same capture path as a microphone: a stream of 32 ms blocks, each handed
over when its real time has come, into the same listener thread, segmenter and turn-taking as
`python chat.py --vad`. Each question is "spoken" once the reply before it is over, after a pause.

The true end of each question is its last voiced sample, so TTFA is counted the way a user lives it:
from the moment they stop speaking (not from when the program decided they had) to the first reply
audio. The program's own transcript line is kept beside it.

    python bench/live_run.py OUT.json QUESTION.wav... -- CHAT.PY ARGS (--vad is added; add --transcript)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talkgpt4all.audio import SAMPLE_RATE, load_audio  # noqa: E402
from talkgpt4all.audio.vad import CHUNK  # noqa: E402

VOICED = 0.01  # |sample| above this is voice (the recordings are clean)
PAUSE = 1.0  # seconds of silence before each question
GIVE_UP = 60.0  # seconds after a question with no turn for it: go on without it


class RecordedMicrophone:
    """A microphone that says each recording in turn, in real time, once the last turn is over."""

    def __init__(
        self, recordings: list[np.ndarray], turns_done: threading.Semaphore, give_up: Callable[[], None]
    ) -> None:
        self.recordings, self.turns_done, self.give_up = recordings, turns_done, give_up
        self.captured_at = 0.0
        self.true_ends: list[float] = []  # perf_counter time of each question's last voiced sample
        self._queue: list[np.ndarray] = []
        self._next = 0.0  # when the next block is due
        self._started = False

    def start(self) -> None:
        self._next = time.perf_counter()

    def _schedule(self) -> None:
        """The next question (after its pause), if the reply before it is over. A question that made no
        turn (not heard as speech) is not waited for forever."""
        waited = self.true_ends and time.perf_counter() - self.true_ends[-1] > GIVE_UP
        if self._started and not self.turns_done.acquire(blocking=False) and not waited:
            return
        if not self.recordings:
            if waited:
                self.give_up()
            return
        self._started = True
        speech = self.recordings.pop(0)
        audio = np.concatenate([np.zeros(int(PAUSE * SAMPLE_RATE), np.float32), speech])
        last_voiced = int(np.flatnonzero(np.abs(audio) > VOICED)[-1])
        blocks = [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]
        blocks[-1] = np.pad(blocks[-1], (0, CHUNK - len(blocks[-1])))
        # Its true end, on the clock of the block schedule that starts now.
        self.true_ends.append(self._next + (last_voiced + 1) / SAMPLE_RATE)
        self._queue.extend(blocks)

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        if not self._queue:
            self._schedule()
        block = self._queue.pop(0) if self._queue else np.zeros(CHUNK, np.float32)
        self._next += CHUNK / SAMPLE_RATE
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            self._next = time.perf_counter()  # the listener fell far behind (a busy machine): catch up
        self.captured_at = self._next
        return block

    def close(self) -> None:
        pass


def main() -> int:
    out, rest = Path(sys.argv[1]), sys.argv[2:]
    split = rest.index("--")
    files, chat_args = [Path(p) for p in rest[:split]], rest[split + 1 :]
    from talkgpt4all import app, cli
    from talkgpt4all.observers import TurnObserver
    from talkgpt4all.pipeline import TurnResult

    config = cli.configure([*chat_args, "--vad"])
    turns_done = threading.Semaphore(0)
    first_audio: dict[int, float] = {}
    keys_read, keys_write = os.pipe()
    closed: list[bool] = []

    def ctrl_d() -> None:
        if not closed:
            closed.append(True)
            os.close(keys_write)

    mic = RecordedMicrophone([load_audio(p) for p in files], turns_done, ctrl_d)

    class Watch(TurnObserver):
        """Sees each turn end, so the next question can be spoken, and when its first audio came."""

        def turn_ended(self, result: TurnResult) -> None:
            if result.timings.first_audio is not None:
                first_audio[result.turn] = result.speech_end + result.timings.first_audio
            turns_done.release()
            if result.turn == len(files):
                ctrl_d()  # the last question is answered

    with os.fdopen(keys_read, "rb", buffering=0) as keys:
        app.run(config, keys, microphone=mic, observers=[Watch()])
    turns = []
    for turn, true_end in enumerate(mic.true_ends, 1):
        heard = first_audio.get(turn)
        turns.append({"turn": turn, "ttfa_true": None if heard is None else heard - true_end})
    out.write_text(json.dumps(turns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
