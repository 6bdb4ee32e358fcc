"""Always on: speech counts only once the assistant is addressed, and follow-ups need no wake word.

Two ways to address it:
- `--wake NAME|PATH`: a microWakeWord keyword model (Apache-2.0, 50 to 80 KB of TFLite) listens to the
  echo-cancelled microphone stream, 30 ms at a time. Nothing is transcribed and the language model is not
  touched until it hears its word, so idle costs little. The built-in models (hey_jarvis, okay_nabu, alexa,
  hey_mycroft) come in pymicro-wakeword's wheel, which also brings TFLite's C library (Linux, Windows).
  Where that wheel does not install (macOS), the same model files run on LiteRT (ai-edge-litert), taken
  once from that wheel on PyPI. Startup says which runtime is used.
- `--wake-phrase TEXT`: any phrase in any language ("computer", "小助手"), found in the transcript of each
  utterance, tolerant of Whisper's spelling, case and punctuation. Every platform, at the cost of
  transcribing all that is heard.

The wake word is taken out of the turn: "Hey Jarvis, what time is it" is the turn "what time is it". Said
alone, it opens the gate for the request that follows. After each reply, the gate stays open for the
follow-up (--follow-up seconds). Speech that is not addressed leaves no trace: no turn, no transcript, no
history.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Protocol

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, Audio
from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import MissingDependencyError, ModelError

log = logging.getLogger("talkgpt4all")

BUILTIN = ("hey_jarvis", "okay_nabu", "alexa", "hey_mycroft")
WHEEL = "pymicro-wakeword==2.5.0"  # the built-in models, for a machine that cannot install it (macOS)
WHEEL_PLATFORM = "manylinux_2_35_x86_64"  # the model files are the same in every build of the wheel
INSTALL_HINT = 'pip install -e ".[wake]"'
FOLLOW_UP_S = 8.0  # after a reply, how long a follow-up needs no wake word
AFTER_WAKE_S = 8.0  # after the wake word said alone, how long the request may take to begin
REFRACTORY_S = 1.5  # after hearing the wake word, the same word is not heard again this soon
STEP = 160  # samples per feature (10 ms), as microWakeWord's front end computes them
MATCH = 0.75  # how close (difflib's ratio) the transcript's words must be to the wake phrase


# ---------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class KeywordModel:
    """A microWakeWord model: its TFLite file and the settings its JSON gives."""

    path: Path
    phrase: str  # what it hears, as words ("hey jarvis")
    cutoff: float  # the averaged probability above which it has heard the word
    window: int  # how many probabilities are averaged

    @classmethod
    def from_json(cls, path: Path) -> KeywordModel:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            micro = config["micro"]
            tflite = path.parent / config["model"]
            model = cls(
                tflite,
                str(config["wake_word"]).lower(),
                float(micro["probability_cutoff"]),
                int(micro["sliding_window_size"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"cannot read the wake word model {path} ({type(exc).__name__}: {exc}): pass a microWakeWord "
                ".json file (with its .tflite beside it)"
            ) from exc
        if not tflite.is_file():
            raise ModelError(f"the wake word model {path} names {tflite.name}, which is not beside it")
        return model


def builtin_name(spec: str) -> str | None:
    """The built-in model a name means ("Hey Jarvis", "hey-jarvis" and "hey_jarvis" alike), or None."""
    name = re.sub(r"[\s\-]+", "_", spec.strip().lower())
    return name if name in BUILTIN else None


def resolve_keyword_model(spec: str) -> KeywordModel:
    """--wake: a built-in name, or the path of a microWakeWord .json file (its .tflite beside it). A name
    is looked for in models/, then in pymicro-wakeword's package, then in the cache (fetched there once
    from that package's wheel on PyPI, where it does not install)."""
    name = builtin_name(spec)
    if name is None:
        path = Path(spec).expanduser()
        if path.suffix.lower() == ".tflite":
            path = path.with_suffix(".json")
        if path.suffix.lower() != ".json" and (MODELS_DIR / f"{spec}.json").is_file():
            path = MODELS_DIR / f"{spec}.json"
        if path.is_file():
            return KeywordModel.from_json(path)
        raise ModelError(
            f"no wake word model {spec!r}: use one of {', '.join(BUILTIN)}, or the path of a microWakeWord "
            ".json file with its .tflite beside it (or --wake-phrase TEXT for any phrase)"
        )
    for folder in (MODELS_DIR, packaged_models(), fetched_models_dir()):
        if folder is not None and (folder / f"{name}.json").is_file():
            return KeywordModel.from_json(folder / f"{name}.json")
    return KeywordModel.from_json(fetch_builtin_models() / f"{name}.json")


def packaged_models() -> Path | None:
    try:
        import pymicro_wakeword
    except ImportError:
        return None
    return Path(pymicro_wakeword.__file__).parent / "models"


def fetched_models_dir() -> Path:
    from talkgpt4all.models import cache_dir

    return cache_dir() / "wake-words"


def fetch_builtin_models() -> Path:
    """The built-in models, from pymicro-wakeword's wheel on PyPI (not installed, only opened), kept in
    the cache."""
    from talkgpt4all.models import files_from_wheel

    target = fetched_models_dir()
    members = {
        f"pymicro_wakeword/models/{name}{ext}": f"{name}{ext}"
        for name in BUILTIN
        for ext in (".json", ".tflite")
    }
    log.warning("fetching the wake word models from the %s wheel on PyPI (once)", WHEEL)
    files_from_wheel(WHEEL, members, target, platform=WHEEL_PLATFORM)
    return target


# ---------------------------------------------------------------------------------------- hearing it


class Runtime(Protocol):
    """Runs a keyword model over its features: the averaged probability so far."""

    name: str

    def probability(self, features: np.ndarray) -> float: ...

    def reset(self) -> None: ...


class CLibrary:
    """TFLite's C library from pymicro-wakeword's wheel, through that package's own binding."""

    name = "TFLite C library (pymicro-wakeword)"

    def __init__(self, model: KeywordModel) -> None:
        from pymicro_wakeword import MicroWakeWord

        lib_dir = Path(sys.modules["pymicro_wakeword"].__file__ or "").parent / "lib"
        library = next(iter(lib_dir.glob("*tensorflowlite_c.*")), None)
        if library is None:
            raise MissingDependencyError(f"pymicro-wakeword has no TFLite library in {lib_dir}: reinstall it")
        self._model = MicroWakeWord(
            model.path.stem,
            wake_word=model.phrase,
            tflite_model=model.path,
            probability_cutoff=model.cutoff,
            sliding_window_size=model.window,
            trained_languages=[],
            libtensorflowlite_c_path=library,
        )

    def probability(self, features: np.ndarray) -> float:
        return self._model.process_streaming_prob(features) or 0.0

    def reset(self) -> None:
        self._model.reset()


class LiteRt:
    """The same model on LiteRT (Google's TFLite runtime, ai-edge-litert), for where pymicro-wakeword has
    no wheel: its steps as pymicro-wakeword takes them (features in groups of the model's stride,
    quantized; the output dequantized and averaged over the model's window)."""

    name = "LiteRT (ai-edge-litert)"

    def __init__(self, model: KeywordModel) -> None:
        self.model = model
        self._features: list[np.ndarray] = []
        self._probabilities: deque[float] = deque(maxlen=model.window)
        self._load()

    def _load(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(self.model.path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._stride = int(self._input["shape"][1])

    def probability(self, features: np.ndarray) -> float:
        self._features.append(features)
        if len(self._features) < self._stride:
            return 0.0
        scale, zero = self._input["quantization"]
        stacked = np.concatenate(self._features, axis=1) / scale + zero
        self._features.clear()
        self._interpreter.set_tensor(self._input["index"], np.round(stacked).astype(self._input["dtype"]))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])
        scale, zero = self._output["quantization"]
        self._probabilities.append(float((out.astype(np.float32).item() - zero) * scale))
        if len(self._probabilities) < self.model.window:
            return 0.0
        return float(np.mean(self._probabilities))

    def reset(self) -> None:
        self._features.clear()
        self._probabilities.clear()
        self._load()  # the model's streaming state lives in the interpreter


RUNTIMES: dict[str, Callable[[KeywordModel], Runtime]] = {"tflite": CLibrary, "litert": LiteRt}


PACKAGES = {"tflite": "pymicro_wakeword", "litert": "ai_edge_litert"}  # what each runtime imports


def runtime_name(name: str | None = None) -> str:
    """The runtime for this platform, found before any model is fetched: pymicro-wakeword's C library
    where it installs, else LiteRT. name forces one ("tflite" or "litert")."""
    import importlib.util

    order = [name] if name else (["litert"] if sys.platform == "darwin" else ["tflite", "litert"])
    for runtime in order:
        if importlib.util.find_spec(PACKAGES[runtime]) is not None and importlib.util.find_spec(
            "pymicro_features"
        ):
            return runtime
    package = "ai-edge-litert" if order == ["litert"] else "pymicro-wakeword"
    raise MissingDependencyError(f"--wake needs {package}: install the wake extra, {INSTALL_HINT}")


def open_runtime(model: KeywordModel, name: str) -> Runtime:
    try:
        return RUNTIMES[name](model)
    except ImportError as exc:  # found, but broken
        raise MissingDependencyError(
            f"--wake cannot load its runtime ({exc}): reinstall the wake extra, {INSTALL_HINT}"
        ) from exc


class KeywordSpotter:
    """Hears the wake word in the microphone's stream (16 kHz float32, in pieces of any length).

    feed() says whether the word ended in the piece just fed. Once heard, it is not heard again for
    REFRACTORY_S of audio: one word, one wake.
    """

    def __init__(self, model: KeywordModel, runtime: Runtime) -> None:
        from pymicro_features import MicroFrontend

        self.model, self.runtime = model, runtime
        self._frontend = MicroFrontend()
        self._pending = np.zeros(0, np.int16)
        self._quiet_until = 0  # samples: heard, and deaf to it until then
        self._seen = 0  # samples fed
        self.last = 0.0  # the last probability (for -v)

    def feed(self, chunk: np.ndarray) -> bool:
        pcm = (np.clip(chunk, -1.0, 1.0) * 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, pcm])
        heard = False
        while len(self._pending) >= STEP:
            step, self._pending = self._pending[:STEP], self._pending[STEP:]
            self._seen += STEP
            result = self._frontend.process_samples(step.astype("<i2").tobytes())
            if not result.features:
                continue
            features = np.asarray(result.features, np.float32).reshape(1, 1, -1)
            self.last = probability = self.runtime.probability(features)
            if probability > self.model.cutoff and self._seen >= self._quiet_until:
                self._quiet_until = self._seen + int(REFRACTORY_S * SAMPLE_RATE)
                heard = True
        return heard

    def reset(self) -> None:
        self.runtime.reset()
        self._frontend.reset()
        self._pending = np.zeros(0, np.int16)


def open_spotter(spec: str, runtime: str | None = None) -> KeywordSpotter:
    """The keyword model for --wake on its runtime: a runtime that is not installed is said before a
    model is looked for (or fetched)."""
    name = runtime_name(runtime)
    model = resolve_keyword_model(spec)
    return KeywordSpotter(model, open_runtime(model, name))


# ---------------------------------------------------------------------------------------- the phrase

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+")  # a Han character, or a run of letters/digits
_PUNCTUATION = " \t,.;:!?…-–—、，。！？；：\"'“”‘’()（）\u3000"


def _tokens(text: str) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text))


def _plain(tokens: list[re.Match[str]]) -> str:
    """Tokens as compared: full-width letters as plain ones (NFKC), without case."""
    return unicodedata.normalize("NFKC", "".join(m.group() for m in tokens)).casefold()


def _simplified(text: str) -> str:
    """Traditional Chinese characters as simplified, so 小助手 matches however Whisper writes it."""
    if not re.search(r"[\u3400-\u9fff]", text):
        return text
    try:
        from talkgpt4all.language import to_script

        simple = to_script(text, "simplified")
    except Exception as exc:  # opencc missing or broken: compare as written
        log.debug("simplified Chinese: %s", exc)
        return text
    return simple if len(simple) == len(text) else text  # the offsets found must hold in the text


def find_phrase(text: str, phrase: str) -> tuple[int, int] | None:
    """Where the transcript says the phrase (start and end offsets in the text), tolerant of case,
    punctuation, spacing, full-width letters, Chinese script and a letter or two misheard; None if it
    does not."""
    want = _plain(_tokens(_simplified(phrase)))
    if not want:
        return None
    tokens = _tokens(_simplified(text))
    n = len(_tokens(phrase))
    best: tuple[float, int, int] | None = None
    for size in sorted({max(1, n - 1), n, n + 1}):
        for i in range(len(tokens) - size + 1):
            ratio = SequenceMatcher(None, _plain(tokens[i : i + size]), want).ratio()
            if ratio >= MATCH and (best is None or ratio > best[0]):
                best = (ratio, tokens[i].start(), tokens[i + size - 1].end())
    return None if best is None else (best[1], best[2])


def strip_phrase(text: str, phrase: str) -> str | None:
    """The transcript without the phrase, if it says it ("Hey, Jarvis! What time is it?" → "What time is
    it?"); None if it does not."""
    found = find_phrase(text, phrase)
    if found is None:
        return None
    before, after = text[: found[0]].rstrip(_PUNCTUATION), text[found[1] :].lstrip(_PUNCTUATION)
    if not before:
        # The request now begins the sentence: as it would be written alone, so that the model gets
        # the same words as without a wake word ("Hey Jarvis, what time…" → "What time…").
        starts_upper = text[:1].isupper()
        return after[:1].upper() + after[1:] if starts_upper and after[:1].islower() else after
    return f"{before} {after}".strip() if after else before


# ---------------------------------------------------------------------------------------- the gate


class Gate:
    """Whether speech is for the assistant now: open for a while after the wake word, and after each
    reply for the follow-up. Read from the listener's thread, set from the loop's: a lock."""

    def __init__(self, follow_up: float = FOLLOW_UP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.follow_up, self.clock = follow_up, clock
        self._until = -math.inf
        self.woken_by_word = False  # the window is the wake word's, not a follow-up's
        self._lock = threading.Lock()

    def wake(self) -> bool:
        """The wake word was heard: open for the request. True if it was closed."""
        with self._lock:
            was_open = self.clock() < self._until
            self._until = max(self._until, self.clock() + max(self.follow_up, AFTER_WAKE_S))
            self.woken_by_word = True
            return not was_open

    def replied(self) -> None:
        """A reply was given: open for a follow-up (closed at once with --follow-up 0)."""
        with self._lock:
            self._until = self.clock() + self.follow_up
            self.woken_by_word = False

    def is_open(self) -> bool:
        return self.clock() < self._until

    def left(self) -> float:
        """Seconds the gate stays open (0 when closed)."""
        return max(0.0, self._until - self.clock())


@dataclass
class Wake:
    """What the listener and the session share: the phrase taken out of transcripts, the gate, and the
    keyword spotter (None with --wake-phrase: the transcript decides)."""

    phrase: str
    gate: Gate
    spotter: KeywordSpotter | None = None
    on_wake: Callable[[], None] = field(default=lambda: None)  # the chime, the status line
    # The utterance under way is for the assistant: it began with the gate open, or the keyword model
    # heard the word in it (the listener's, read by the work begun in its pauses).
    addressed_now: bool = False

    @property
    def by_text(self) -> bool:
        return self.spotter is None

    def waiting(self) -> str:
        """The status line's words while nothing is heard."""
        left = self.gate.left()
        if left > 0:
            kind = "say your request" if self.gate.woken_by_word else "follow-up"
            return f"Listening ({kind}, {math.ceil(left)} s)…"
        return f"Say '{self.phrase}'"

    def heard(self) -> None:
        """The wake word was heard (by the keyword model, or in a transcript): the gate opens, and if it
        was closed the user hears the chime."""
        if self.gate.wake():
            self.on_wake()

    def accept(self, text: str, addressed: bool) -> str | None:
        """A turn's transcript as the assistant takes it: without the wake phrase (which wakes it, if
        said, with --wake-phrase), or None when it was not addressed. addressed: the listener knew it
        was (the gate was open, or the keyword model heard the word in it)."""
        rest, said = self._taken(text, addressed)
        if said and self.by_text:
            self.heard()  # (a keyword model has woken it already, when it heard the word)
        return rest

    def peek(self, text: str, addressed: bool) -> str | None:
        """accept(), without waking: for the work begun in a pause."""
        return self._taken(text, addressed)[0]

    def _taken(self, text: str, addressed: bool) -> tuple[str | None, bool]:
        """The text as taken (see accept), and whether it says the phrase (looked for once)."""
        rest = strip_phrase(text, self.phrase)
        if rest is not None:
            return rest, True
        return (text if addressed or self.gate.is_open() else None), False


def chime(rate: int) -> Audio:
    """The sound of waking: two short rising tones, 0.16 s."""
    pieces = []
    for hz in (880.0, 1320.0):
        t = np.arange(int(0.08 * rate)) / rate
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no click
        pieces.append(0.25 * np.sin(2 * np.pi * hz * t) * ramp)
    return Audio(np.concatenate(pieces).astype(np.float32), rate)
