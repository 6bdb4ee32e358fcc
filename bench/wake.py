#!/usr/bin/env python3
"""The wake word (--wake): is it heard when said, never when not, and what does waiting cost?

Side by side in one run:

1. Accepted: "Hey Jarvis" alone and before a question, said by piper's joe at three speeds, with and
   without a room's background noise, at normal and low volume (24 trials; target 9 in 10), and by
   espeak-ng's English voices (robotic: a stress case, reported).
2. False wakes (target 0):
   - over at least 10 minutes of speech without the wake word: the real recordings the tests have, and
     generated sentences in piper's and espeak-ng's voices;
   - over 10 minutes of the assistant's own replies through a room's echo (bench/echo.py's room) into the
     echo canceller the program uses, with the keyword model on its output, as `--vad` runs it. Some
     replies say the wake word themselves. The same replies without cancelling are reported beside them.
3. Waiting: `chat.py --vad --wake hey_jarvis` idle on PulseAudio virtual devices, its CPU as a share of
   one core, against plain `--vad` idle (target <= 5 %); and the time from the end of the wake word, on the
   microphone, to the chime's first sound on the speaker (target <= 0.3 s), from recordings of both.

    python bench/wake.py [--model hey_jarvis] [--minutes 10] [--idle 30] [--skip-devices] [--json]

Needs `pip install -e '.[wake,bench]'`, espeak-ng, and for part 3 pulseaudio and pulseaudio-utils.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from devices import RATE, Recording, StderrReader, first_sound, last_sound, pulse_server  # noqa: E402
from echo import room_echo  # noqa: E402
from speech import HELD_OUT, PAUSED, write_wav  # noqa: E402

from latency import QUESTIONS, machine, percentile  # noqa: E402

WAKE_SAID = ("Hey Jarvis.", "Hey Jarvis, what is the weather like today?")
SPEEDS = (0.8, 1.0, 1.25)  # piper's length_scale: faster, as trained, slower
LOW = 0.1  # "low volume": -20 dB
ESPEAK_VOICES = ("en", "en-us", "en-gb", "en-gb-scotland", "en-029")
# Sentences without the wake word, for the false-wake count: the benchmark's questions, and prose.
PROSE = """The river runs past the old mill and into the valley, where the farmers grow wheat and barley.
In the morning the market opens early, and the bakers sell bread that is still warm from the oven.
My neighbour has a small garden with tomatoes, beans and a cherry tree that blossoms every spring.
The train to the city leaves at seven, and on most days it is crowded with students and office workers.
She told me that the museum has a new exhibition about ancient ships and the people who sailed them.
If you want to learn to cook, start with simple dishes such as soup, rice and roasted vegetables.
The weather report says it will rain tomorrow afternoon, so we should bring umbrellas to the park.
Our team finished the project a week early, and the manager invited everyone to a dinner to celebrate.
The library closes at nine on weekdays, but on Saturdays it stays open until the late evening.
He bought a second-hand bicycle and now rides to work along the canal every morning.
Jars of honey, jams and pickles lined the shelves of the little shop near the harbour.
Travis and Mervin played chess on the porch while the radio talked about the election results.
Hey, could you pass me the salt and the pepper, please, and maybe the bread as well?
Harvest season is the busiest time of the year for everyone who lives in the countryside.
The children built a sandcastle with towers and a moat, and the tide slowly washed it away.
Please remember to switch off the lights and lock the door when you leave the office tonight.
A good night's sleep, regular exercise and a balanced diet are the basics of a healthy life.
Jarvis Cocker is a singer, and his band became famous in the nineties.
Hey there, how have you been? It has been ages since we last saw each other at the conference.
The engineers tested the bridge for a whole month before they allowed any cars to cross it.""".splitlines()
REPLIES = """Paris is the capital of France, and it is famous for its museums and its cafes.
The sky looks blue because the air scatters blue light from the sun more than red light.
A week has seven days, from Monday to Sunday, and most people work on five of them.
To learn the violin, practise a little every day, and find a teacher who can correct your posture.
You can wake me at any time by saying hey Jarvis, and then asking your question.
Hey Jarvis is my wake word, so when you say it, I listen to what comes next.
The moon goes around the earth about once a month, and it shows us the same face all the time.
Tomatoes grow best in full sun, with regular watering and a stake to hold the plant up.
Octopuses have three hearts and blue blood, and they can change colour in a fraction of a second.
The first person to walk on the moon was Neil Armstrong, in the summer of nineteen sixty nine.""".splitlines()


def piper(text: str, speed: float = 1.0, noise: bool = True) -> np.ndarray:
    """Joe says it, at 16 kHz (noise: piper's own variation, as it speaks by default)."""
    from piper import SynthesisConfig

    from talkgpt4all.audio import SAMPLE_RATE, resample
    from talkgpt4all.tts.piper import Piper

    config = SynthesisConfig(length_scale=speed)
    if not noise:
        config = SynthesisConfig(length_scale=speed, noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(Piper().find("en").synthesize(text, syn_config=config))
    said = np.concatenate([c.audio_float_array for c in chunks])
    return resample(said, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)


def espeak(text: str, voice: str, folder: Path) -> np.ndarray:
    from talkgpt4all.audio import load_audio

    path = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), "--stdin"], input=text.encode(), check=True)
    return load_audio(path)


def room_noise(n: int, level: float, seed: int) -> np.ndarray:
    """A room's background: brown-ish noise (a fan, traffic) at this RMS."""
    white = np.random.default_rng(seed).standard_normal(n)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(400) / 400, mode="same")  # no drift
    noise: np.ndarray = (brown / (np.sqrt(np.mean(brown**2)) + 1e-9) * level).astype(np.float32)
    return noise


def normal(audio: np.ndarray, peak: float = 0.7) -> np.ndarray:
    scaled: np.ndarray = (audio / (np.abs(audio).max() + 1e-9) * peak).astype(np.float32)
    return scaled


def spotter(model: str) -> Any:
    from talkgpt4all.wake import open_spotter

    return open_spotter(model)


def heard(model: str, audio: np.ndarray) -> int:
    """How many times the keyword model hears its word in this audio (fed as the listener feeds it)."""
    spot = spotter(model)
    half = np.zeros(RATE // 2, np.float32)
    audio = np.concatenate([half, audio, half, half])
    return sum(spot.feed(audio[i : i + 512]) for i in range(0, len(audio) - 511, 512))


def accepted(model: str, work: Path) -> dict[str, Any]:
    trials: list[dict[str, Any]] = []
    for text in WAKE_SAID:
        for speed in SPEEDS:
            said = normal(piper(text, speed))
            for noisy in (False, True):
                for volume in (1.0, LOW):
                    audio = said * volume
                    if noisy:
                        audio = audio + room_noise(len(audio), 0.02 * volume, seed=len(trials))
                    hits = heard(model, audio)
                    trials.append(
                        {"text": text, "speed": speed, "noise": noisy, "volume": volume, "hits": hits}
                    )
    robotic: list[dict[str, Any]] = []
    for voice in ESPEAK_VOICES:
        for text in WAKE_SAID:
            robotic.append(
                {"voice": voice, "text": text, "hits": heard(model, normal(espeak(text, voice, work)))}
            )
    return {
        "piper": {"accepted": sum(t["hits"] >= 1 for t in trials), "trials": len(trials), "each": trials},
        "espeak": {"accepted": sum(t["hits"] >= 1 for t in robotic), "trials": len(robotic), "each": robotic},
    }


def other_speech(minutes: float, work: Path) -> tuple[np.ndarray, list[str]]:
    """At least this many minutes of speech without the wake word: the real clips, then sentences in
    turn in piper's voice and espeak-ng's, with short silences between."""
    sys.path.insert(0, str(ROOT / "tests"))
    from clips import real_clips
    from talkgpt4all.audio import load_audio

    gap = np.zeros(int(0.6 * RATE), np.float32)
    pieces, sources = [], []
    for language in ("en", "zh"):
        for name, path, _, _ in real_clips(language):
            pieces += [normal(load_audio(path), 0.5), gap]
            sources.append(name)
    sentences = [*PROSE, *QUESTIONS, *HELD_OUT, *(f"{a} {b}" for a, b in PAUSED)]
    voices = ("piper", *ESPEAK_VOICES)
    i = 0
    while sum(len(p) for p in pieces) < minutes * 60 * RATE:
        text, voice = sentences[i % len(sentences)], voices[(i // len(sentences)) % len(voices)]
        said = piper(text) if voice == "piper" else espeak(text, voice, work)
        pieces += [normal(said, 0.5), gap]
        sources.append(f"{voice}: {text}")
        i += 1
    return np.concatenate(pieces), sources


def false_wakes(model: str, minutes: float, work: Path) -> dict[str, Any]:
    speech, sources = other_speech(minutes, work)
    spot = spotter(model)
    hits = [i / RATE for i in range(0, len(speech) - 511, 512) if spot.feed(speech[i : i + 512])]
    return {
        "minutes": round(len(speech) / RATE / 60, 1),
        "pieces": len(sources),
        "wakes": len(hits),
        "at_s": hits,
    }


def own_replies(model: str, minutes: float) -> dict[str, Any]:
    """The assistant's replies (some saying the wake word) through a room into the microphone, with the
    program's echo canceller fed what the speakers play, and the keyword model on its output."""
    from talkgpt4all.audio.echo import EchoCanceller, FarEnd

    gap = np.zeros(int(0.8 * RATE), np.float32)
    replies = [np.concatenate([piper(text) * 0.5, gap]) for text in REPLIES]
    loop = np.concatenate(replies)
    far = np.tile(loop, int(np.ceil(minutes * 60 * RATE / len(loop))))[: int(minutes * 60 * RATE)]
    noise = np.random.default_rng(2).standard_normal(len(far)).astype(np.float32) * 0.001
    near = room_echo(far) + noise
    ends = FarEnd()
    canceller = EchoCanceller(ends)
    cancelled, raw = spotter(model), spotter(model)
    t0 = 1000.0  # the speakers' and the microphone's clock (seconds)
    block = 512
    counts = {"cancelled": 0, "raw": 0}
    ends.played(t0, far)
    for i in range(0, len(near) - block + 1, block):
        _, clean, _ = canceller.process(near[i : i + block], t0 + i / RATE)
        counts["cancelled"] += cancelled.feed(clean)
        counts["raw"] += raw.feed(near[i : i + block])
    saying = sum("jarvis" in text.lower() for text in REPLIES)
    return {
        "minutes": round(len(far) / RATE / 60, 1),
        "replies_saying_the_wake_word": f"{saying} of {len(REPLIES)}, played {len(far) // len(loop)} times",
        "wakes_cancelled": counts["cancelled"],
        "wakes_without_cancelling": counts["raw"],
    }


# ---------------------------------------------------------------------------------------- on the devices


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its threads so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def on_devices(model: str, idle: float, work: Path) -> dict[str, Any]:
    """Idle CPU with and without the wake word, and the chime's delay, on the virtual devices."""
    wake_alone = write_wav(
        work / "wake.wav", np.concatenate([np.zeros(RATE // 2, np.float32), normal(piper("Hey Jarvis."))])
    )
    rows: dict[str, Any] = {}
    for row, flags in (("--vad", []), ("--vad --wake", ["--wake", model])):
        with pulse_server(work / f"pulse-{len(rows)}") as env:
            env = {**env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "spk"}
            argv = [
                sys.executable,
                str(ROOT / "chat.py"),
                "--vad",
                "--input-device",
                "pulse",
                "--output-device",
                "pulse",
                *flags,
            ]
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            said = StderrReader(proc)
            try:
                if not said.ready.wait(300):
                    sys.exit(f"chat.py never said it was ready: {said.text.strip()}")
                time.sleep(3.0)  # warmed up, settled
                before, began = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(idle)
                share = (cpu_seconds(proc.pid) - before) / (time.monotonic() - began)
                rows[row] = {"idle_cpu_share_of_a_core": round(share, 4)}
                if flags:
                    rows[row]["chime_s"] = chime_delays(env, wake_alone)
            finally:
                if proc.stdin:
                    proc.stdin.close()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return rows


def chime_delays(env: dict[str, str], wake: Path, times: int = 5) -> list[float | None]:
    """From the last sound of "Hey Jarvis" on the microphone to the chime's first on the speaker."""
    mic, speaker = Recording(env, "mic.monitor"), Recording(env, "spk.monitor")
    delays: list[float | None] = []
    try:
        time.sleep(0.5)
        for _ in range(times):
            asked = time.perf_counter()
            subprocess.run(["paplay", "--device=mic", str(wake)], env=env, check=True)
            time.sleep(10.0)  # the chime, and the gate closing again (the request never comes)
            end = last_sound(mic.samples(), mic.at(asked))
            if end is None:
                delays.append(None)
                continue
            chime = first_sound(speaker.samples(), speaker.at(mic.time_of(end) - 0.5))
            delays.append(None if chime is None else round(speaker.time_of(chime) - mic.time_of(end), 3))
    finally:
        mic.stop()
        speaker.stop()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hey_jarvis", help="a built-in wake word (default: hey_jarvis)")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="of other speech, and of replies (default: 10)"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured (default: 30)")
    parser.add_argument("--skip-devices", action="store_true", help="no PulseAudio part (idle CPU, chime)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.model != "hey_jarvis":
        parser.error("the material says 'Hey Jarvis': only --model hey_jarvis is measured")
    if shutil.which("espeak-ng") is None:
        sys.exit("bench needs espeak-ng: sudo apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-wake-") as tmp:
        work = Path(tmp)
        print("accepted…", file=sys.stderr, flush=True)
        result: dict[str, Any] = {"machine": machine(), "runtime": spotter(args.model).runtime.name}
        result["accepted"] = accepted(args.model, work)
        print("false wakes in other speech…", file=sys.stderr, flush=True)
        result["other_speech"] = false_wakes(args.model, args.minutes, work)
        print("false wakes in its own replies…", file=sys.stderr, flush=True)
        result["own_replies"] = own_replies(args.model, args.minutes)
        if not args.skip_devices:
            print("idle and the chime, on the virtual devices…", file=sys.stderr, flush=True)
            result["devices"] = on_devices(args.model, args.idle, work)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    a, o, r = result["accepted"], result["other_speech"], result["own_replies"]
    print(f"machine: {result['machine']}; runtime: {result['runtime']}")
    for voice, how in (("piper", "3 speeds x noise x volume"), ("espeak", ", ".join(ESPEAK_VOICES))):
        print(f"accepted, {voice} ({how}; 2 phrases): {a[voice]['accepted']} of {a[voice]['trials']}")
    print(f"false wakes in {o['minutes']} min of other speech ({o['pieces']} pieces): {o['wakes']}")
    print(
        f"false wakes in {r['minutes']} min of its own replies ({r['replies_saying_the_wake_word']}): "
        f"{r['wakes_cancelled']} echo-cancelled, {r['wakes_without_cancelling']} without cancelling"
    )
    for row, d in result.get("devices", {}).items():
        line = f"idle CPU with {row}: {100 * d['idle_cpu_share_of_a_core']:.1f} % of a core"
        if "chime_s" in d:
            measured = [x for x in d["chime_s"] if x is not None]
            line += f"; wake word end to chime: p50 {percentile(measured, 0.5) or 0:.3f} s ({d['chime_s']})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
