"""The dependencies' internals our adapters use, pinned exactly in pyproject.toml, each checked here.

An upgrade that moves one fails here first, with a message naming what moved and which adapter uses it,
rather than as a wrong transcript or a crash in a conversation. To upgrade: change the pin, run these,
and adapt the adapter each failure names.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT


def pinned(package: str) -> str:
    """The version pyproject.toml pins the package to."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(rf'"{re.escape(package)}==([^";]+)', text)
    assert found, f"{package} is not pinned exactly in pyproject.toml, though its internals are used"
    return found.group(1)


@pytest.mark.parametrize("package", ["faster-whisper", "llama-cpp-python", "pyaec"])
def test_the_installed_version_is_the_pinned_one(package: str):
    installed = importlib.metadata.version(package)
    assert installed == pinned(package), (
        f"{package} {installed} is installed, but pyproject.toml pins {pinned(package)}: its internals are "
        "used (see this file), so run this file against the new version before moving the pin"
    )


def moved(what: str, adapter: str) -> str:
    return f"{what} moved or changed: {adapter} uses it; adapt it before moving the pin in pyproject.toml"


def reach(obj: object, path: str, adapter: str) -> object:
    """obj.a.b.c for path "a.b.c", or a failure naming what is no longer there."""
    for name in path.split("."):
        assert hasattr(obj, name), moved(f"{type(obj).__name__}.{name} (in {path})", adapter)
        obj = getattr(obj, name)
    return obj


# ------------------------------------------------------------------ faster-whisper


def test_faster_whisper_decoding_internals_used_by_the_one_window_transcriber():
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

    where = "talkgpt4all/stt/faster_whisper.py (FasterWhisperTranscriber._one_window)"
    ours = {
        "beam_size", "best_of", "patience", "length_penalty", "repetition_penalty", "no_repeat_ngram_size",
        "log_prob_threshold", "no_speech_threshold", "compression_ratio_threshold",
        "condition_on_previous_text", "prompt_reset_on_temperature", "temperatures", "initial_prompt",
        "prefix", "suppress_blank", "suppress_tokens", "without_timestamps", "max_initial_timestamp",
        "word_timestamps", "prepend_punctuations", "append_punctuations", "multilingual", "max_new_tokens",
        "clip_timestamps", "hallucination_silence_threshold", "hotwords",
    }  # fmt: skip
    fields = {f.name for f in dataclasses.fields(TranscriptionOptions)}
    assert fields == ours, moved(f"TranscriptionOptions' fields (now {sorted(fields ^ ours)} differ)", where)
    parameters = list(inspect.signature(WhisperModel.generate_segments).parameters)
    assert parameters[:6] == ["self", "features", "tokenizer", "options", "log_progress", "encoder_output"], (
        moved(f"WhisperModel.generate_segments{parameters}", where)
    )
    for name in ("encode", "feature_extractor", "hf_tokenizer"):
        assert hasattr(WhisperModel, name) or name in inspect.getsource(WhisperModel.__init__), moved(
            f"WhisperModel.{name}", where
        )
    assert list(inspect.signature(get_suppressed_tokens).parameters) == ["tokenizer", "suppress_tokens"], (
        moved("faster_whisper.transcribe.get_suppressed_tokens", where)
    )
    tokenizer = ["self", "tokenizer", "multilingual", "task", "language"]
    assert list(inspect.signature(Tokenizer.__init__).parameters)[:5] == tokenizer, moved(
        "faster_whisper.tokenizer.Tokenizer(tokenizer, multilingual, task, language)", where
    )


def test_faster_whisper_encoder_and_language_detection_on_a_real_model():
    """The calls _one_window makes, on the base starter: encode() of a fitted window, and
    detect_language() on its output (the multilingual path) giving [[("<|en|>", p), ...]]."""
    from faster_whisper import WhisperModel

    from talkgpt4all.models import starter_whisper

    where = "talkgpt4all/stt/faster_whisper.py (FasterWhisperTranscriber._one_window)"
    model = WhisperModel(str(starter_whisper("base")), device="cpu", compute_type="int8")
    features = model.feature_extractor(np.zeros(16000, np.float32))
    window = np.zeros((features.shape[0], 1000), np.float32)
    encoded = model.encode(window)
    assert isinstance(model.model.is_multilingual, bool), moved("WhisperModel.model.is_multilingual", where)
    [[(token, probability), *_]] = model.model.detect_language(encoded)
    assert token.startswith("<|") and token.endswith("|>") and 0 <= probability <= 1, moved(
        "WhisperModel.model.detect_language's [[(token, probability)]]", where
    )


def test_faster_whisper_size_names_and_the_silero_asset():
    from faster_whisper.utils import _MODELS, get_assets_path

    from talkgpt4all.audio.vad import SILERO_FILE, SileroVad

    assert _MODELS.get("base") == "Systran/faster-whisper-base", moved(
        "faster_whisper.utils._MODELS (a size name -> its Hub repository)",
        "talkgpt4all/models.py (resolve_whisper)",
    )
    assert (Path(get_assets_path()) / SILERO_FILE).is_file(), moved(
        f"faster-whisper's asset {SILERO_FILE}", "talkgpt4all/audio/vad.py (SileroVad)"
    )
    vad = SileroVad()
    inputs = {i.name for i in vad._session.get_inputs()}
    assert inputs == {"input", "h", "c"}, moved(f"the Silero model's inputs ({inputs})", "SileroVad")
    assert 0 <= vad(np.zeros(512, np.float32)) <= 1


# ------------------------------------------------------------------ llama-cpp-python


@pytest.fixture(scope="module")
def llama():
    from llama_cpp import Llama

    from talkgpt4all.models import starter_gguf

    model = Llama(model_path=str(starter_gguf()), n_ctx=256, verbose=False)
    yield model
    model.close()


def test_llama_cpp_internals_used_to_shift_the_cache_and_prefill(llama):
    """What LlamaCppChatModel._reuse_cache and prefill() touch: the context's KV cache calls (and that
    removing returns whether it could), the token list llama-cpp-python compares a prompt against, and
    llama.cpp's own count of the tokens it computed."""
    from llama_cpp import llama_cpp as lib

    where = "talkgpt4all/llm/llama_cpp.py (LlamaCppChatModel._reuse_cache, prefill)"
    tokens = llama.tokenize(b"The capital of France is Paris. " * 4)
    reach(llama, "eval", where)(tokens)
    n_tokens, input_ids = reach(llama, "n_tokens", where), reach(llama, "input_ids", where)
    assert n_tokens == len(tokens) and list(input_ids[:n_tokens]) == tokens, moved(
        "Llama.n_tokens / Llama.input_ids (the tokens in the cache)", where
    )
    prefix = reach(llama, "longest_token_prefix", where)
    assert prefix(tokens, [*tokens[:5], 0]) == 5, moved("Llama.longest_token_prefix", where)
    assert isinstance(reach(llama, "n_batch", where), int), moved("Llama.n_batch", where)
    memory = reach(llama, "_ctx.memory", where)
    assert memory is not None and reach(lib, "llama_memory_can_shift", where)(memory), moved(
        "llama_memory_can_shift", where
    )
    assert reach(llama, "_ctx.kv_cache_seq_rm", where)(0, 4, 8) is True, moved(
        "LlamaContext.kv_cache_seq_rm, which says whether it removed", where
    )
    reach(llama, "_ctx.kv_cache_seq_shift", where)(0, 8, len(tokens), -4)  # the rest moves down into place
    context = reach(llama, "_ctx.ctx", where)
    reach(lib, "llama_synchronize", where)(context)
    computed = reach(lib, "llama_perf_context", where)(context).n_p_eval
    assert isinstance(computed, int) and computed >= len(tokens), moved(
        "llama_perf_context().n_p_eval", where
    )


def test_llama_cpp_chat_template_formatter(llama):
    from talkgpt4all.llm.llama_cpp import chat_formatter

    where = "talkgpt4all/llm/llama_cpp.py (chat_formatter)"
    assert reach(llama, "_model.token_get_text", where)(llama.token_eos()), moved("token_get_text", where)
    formatted = chat_formatter(llama, "SmolLM2")(messages=[{"role": "user", "content": "Hi"}])
    assert "Hi" in formatted.prompt and isinstance(formatted.added_special, bool), moved(
        "Jinja2ChatFormatter's result (prompt, added_special, stop, stopping_criteria)", where
    )
    assert formatted.stopping_criteria is not None, moved("Jinja2ChatFormatter stop_token_ids", where)


# ------------------------------------------------------------------ pyaec


def test_pyaec_raw_call_used_by_the_speex_canceller():
    pyaec = pytest.importorskip("pyaec", reason="pyaec has a library for x86_64 and arm64 only")

    where = "talkgpt4all/audio/echo.py (EchoCanceller._speex_frame)"
    assert getattr(pyaec, "lib", None) is not None and hasattr(pyaec.lib, "AecCancelEcho"), moved(
        "pyaec.lib.AecCancelEcho", where
    )
    assert reach(pyaec.Aec(160, 4096, 16000, True), "_aec", where), moved("pyaec.Aec()._aec", where)
    from talkgpt4all.audio.echo import EchoCanceller, FarEnd

    canceller = EchoCanceller(FarEnd())
    out = canceller._speex_frame(np.zeros(160, np.float32), np.zeros(160, np.float32))
    assert out.shape == (160,) and out.dtype == np.float32


def test_llama_cpp_python_is_pinned_to_one_version_everywhere_it_is_built():
    """pyproject.toml pins it; requirements.txt builds it without AMX on x86_64 (the newcomer's path);
    .ci/run builds its own wheel once per CPU. All three must name the same version."""
    version = pinned("llama-cpp-python")
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.findall(r"^llama-cpp-python==([^;\s]+)", requirements, re.M) == [version], requirements
    assert f"LLAMA_CPP_PYTHON={version}\n" in (ROOT / ".ci" / "run").read_text()
