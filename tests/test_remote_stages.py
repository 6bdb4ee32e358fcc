"""--stt openai and --tts openai against small local servers standing in for speaches or Kokoro-FastAPI:
they wrap the real faster-whisper (tiny.en) and the real piper starter voice."""

from __future__ import annotations

import email.parser
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import Ears, run_chat, speak_to_file, wer


class Stages(http.server.ThreadingHTTPServer):
    mode: str  # "ok", "500", "garbage", or "thai" (a server that hears Thai unless told the language)
    requests: list[str]
    languages: list[str | None]  # the language field of each transcription request
    hear: object
    voice: object


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Stages

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.requests.append(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.mode == "500":
            self._send(
                500, json.dumps({"error": {"message": "model not loaded"}}).encode(), "application/json"
            )
            return
        if self.server.mode == "garbage":
            self._send(200, b"<html>it works!</html>", "text/html")
            return
        if self.path == "/v1/audio/transcriptions":
            message = email.parser.BytesParser().parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
            )
            parts = {
                part.get_param("name", header="content-disposition"): part for part in message.get_payload()
            }
            samples, _ = sf.read(io.BytesIO(parts["file"].get_payload(decode=True)), dtype="float32")
            segments, _ = self.server.hear.transcribe(samples, language="en")  # type: ignore[attr-defined]
            text = " ".join(s.text.strip() for s in segments)
            given = parts["language"].get_payload() if "language" in parts else None
            self.server.languages.append(given)
            heard = given or ("thai" if self.server.mode == "thai" else "english")
            self._send(200, json.dumps({"text": text, "language": heard}).encode(), "application/json")
        elif self.path == "/v1/audio/speech":
            said = json.loads(body)["input"]
            chunks = list(self.server.voice.synthesize(said))  # type: ignore[attr-defined]
            wav = io.BytesIO()
            sf.write(
                wav,
                np.concatenate([c.audio_float_array for c in chunks]),
                chunks[0].sample_rate,
                format="WAV",
            )
            self._send(200, wav.getvalue(), "audio/wav")
        else:
            self._send(404, b"{}", "application/json")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stages() -> Iterator[Stages]:
    pytest.importorskip("piper", reason="needs the piper extra: pip install -e '.[piper]' (.ci/run does)")
    from faster_whisper import WhisperModel
    from piper import PiperVoice

    from talkgpt4all.models import starter_whisper
    from talkgpt4all.tts.piper import starter_voice

    server = Stages(("127.0.0.1", 0), _Handler)
    server.mode, server.requests, server.languages = "ok", [], []
    server.hear = WhisperModel(str(starter_whisper("tiny.en")), device="cpu", compute_type="int8")
    voice = starter_voice()
    assert voice is not None
    server.voice = PiperVoice.load(voice, voice.with_name(voice.name + ".json"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: Stages) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_speech_in_and_out_through_servers(stages: Stages, tmp_path: Path, ears: Ears):
    stages.mode = "ok"
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    log, replies = tmp_path / "t.jsonl", tmp_path / "replies"
    run = run_chat(
        "--input", str(question), "--stt", "openai", "--stt-url", url(stages), "--tts", "openai",
        "--tts-url", url(stages), "--save-audio", str(replies), "--no-play", "--transcript", str(log),
        "--temperature", "0", "--max-tokens", "40",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    [turn] = [json.loads(line) for line in log.read_text().splitlines()]
    assert wer("What is the capital of France?", turn["user"]) <= 0.2 and turn["language"] == "en", turn
    assert wer(turn["reply"], ears.hear(replies / "reply-001.wav")) <= 0.35
    assert "/v1/audio/transcriptions" in stages.requests and "/v1/audio/speech" in stages.requests


@pytest.mark.parametrize("stage", ["stt", "tts"])
@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("dead", "cannot reach the {what} at http://127.0.0.1:9/v1: start it, or check --{stage}-url"),
        ("500", "answered 500 model not loaded"),
        ("garbage", "sent {garbage}"),
    ],
)
def test_a_server_that_fails_is_one_line(stages: Stages, tmp_path: Path, stage: str, mode: str, says: str):
    stages.mode = mode
    address = "http://127.0.0.1:9/v1" if mode == "dead" else url(stages)
    # Speech to text is asked for a spoken turn; speech, for a reply (both already at warm-up).
    turn = ["--input", str(speak_to_file("Hello.", tmp_path / "h.wav"))] if stage == "stt" else ["--text"]
    served = [f"--{stage}", "openai", f"--{stage}-url", address]
    quiet = ["--model", "smollm2"]  # the starter named: no notice about it
    run = run_chat(
        *turn, *served, *quiet, "--no-play", "--save-audio", str(tmp_path / "replies"), stdin="Hello\n"
    )
    stages.mode = "ok"
    assert run.returncode == 1 and len(run.stderr_lines) == 1, run.stderr
    what = "speech-to-text server" if stage == "stt" else "speech server"
    garbage = "no transcript" if stage == "stt" else "something that is not audio"
    assert says.format(what=what, stage=stage, garbage=garbage) in run.stderr_lines[0], run.stderr


def test_a_turn_the_server_hears_in_a_language_not_the_user_s_is_asked_again_in_theirs(
    stages: Stages, tmp_path: Path
):
    """A server gives no language probabilities: a turn it hears outside --languages is transcribed
    again, told the first of them. Outside them nothing comes back; with any, the server's word stands."""
    from talkgpt4all.audio import load_audio
    from talkgpt4all.stt.remote import RemoteTranscriber

    audio = load_audio(speak_to_file("How many days are there in a week?", tmp_path / "q.wav"))
    stages.mode = "thai"
    try:
        stages.languages.clear()
        heard = RemoteTranscriber(url(stages), languages=("en", "zh")).transcribe(audio)
        assert heard.language == "en" and wer("How many days are there in a week?", heard.text) <= 0.2
        assert stages.languages == [None, "en"]  # detected by the server, then told

        stages.languages.clear()
        assert RemoteTranscriber(url(stages), languages=("zh",)).transcribe(audio).language == "zh"
        assert stages.languages == ["zh"]  # one language: told at once

        stages.languages.clear()
        assert RemoteTranscriber(url(stages), languages=None).transcribe(audio).language == "th"
        assert stages.languages == [None]
    finally:
        stages.mode = "ok"
