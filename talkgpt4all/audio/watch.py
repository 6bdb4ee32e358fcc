"""Devices that come and go: where the sound server has our streams, watched from one thread.

On Linux the microphone and the speaker are usually reached through PulseAudio (or PipeWire's pulse
server), behind PortAudio's "pulse" or "default" device. When a headset is unplugged there, nothing
reaches PortAudio: the server moves our stream to whatever device is left, which may be the
speakers' own monitor. So the sound server is asked (with pulsectl, a few times a second) where each
of our streams is, and whether that is where it should be:

- a device the user named (PULSE_SOURCE / PULSE_SINK, the way to name one behind PortAudio's pulse
  device) and nothing else;
- without one, any device but a monitor of the speakers (unless the stream began on one): the
  server's new default is taken, as the server itself does.

Elsewhere (macOS, Windows, ALSA without a sound server) a device that goes away stops the stream, and
the streams notice that themselves (see devices.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("talkgpt4all")

POLL_SECONDS = 0.25
WHAT = {"input": "microphone", "output": "speaker"}


@dataclass
class Place:
    """Where one of our streams should be, and where it is."""

    named: str | None  # the device the user named, if any
    monitor_ok: bool = False  # the stream began on a monitor, so one is what the user wants
    device: str | None = None  # where the server has the stream now (None: no stream of ours)
    expected: str | None = None  # the server's default when the stream was opened
    lost: str | None = None  # why the stream is not where it should be, once it is not


class PulseWatch:
    """Where the sound server has this process's capture and playback streams.

    lost(kind) says why the stream of that kind ("input" or "output") is not where it should be (its
    device is gone, or the server moved it), or None. available(kind) says whether a stream opened
    now would land where it should. Both read what the watching thread last saw. Once the watch can no
    longer ask the server (it went away for good), it tells nothing: no loss, every device available,
    and opening a stream is the test, as without a watch.
    """

    def __init__(self, pulse: Any) -> None:
        self._pulse = pulse
        # A one-line notice for the user, from the watching thread (the app shows it on the status line)
        self.notify: Callable[[str], None] = lambda text: log.warning("%s", text)
        self._pid = str(os.getpid())
        self._lock = threading.Lock()
        self._places = {
            "input": Place(os.environ.get("PULSE_SOURCE") or None),
            "output": Place(os.environ.get("PULSE_SINK") or None),
        }
        self._available = {"input": True, "output": True}
        self._defaults: dict[str, str | None] = {"input": None, "output": None}  # as last seen
        self._stop = threading.Event()
        self._blind = False  # the watch gave up on the server: it can tell nothing
        self._thread = threading.Thread(target=self._watch, name="device-watch", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls) -> PulseWatch | None:
        """A watch on the sound server, or None without one (or without pulsectl)."""
        try:
            import pulsectl
        except (ImportError, OSError) as exc:  # OSError: no libpulse
            log.debug("no sound server watch: %s", exc)
            return None
        try:
            pulse = pulsectl.Pulse("talkgpt4all-watch", connect=True)
        except Exception as exc:  # pulsectl.PulseError: no server to ask
            log.debug("no sound server watch: %s", exc)
            return None
        return cls(pulse)

    def lost(self, kind: str) -> str | None:
        with self._lock:
            return None if self._blind else self._places[kind].lost

    def available(self, kind: str) -> bool:
        with self._lock:
            return self._blind or self._available[kind]

    def opened(self, kind: str) -> None:
        """A stream of this kind was (re)opened: where it lands is where it should be, unless named."""
        with self._lock:
            place = self._places[kind]
            place.device, place.lost, place.expected = None, None, self._defaults[kind]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        try:
            self._pulse.close()
        except Exception as exc:
            log.debug("closing the sound server watch: %s", exc)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._look()
            except Exception as exc:  # the server went away: nothing to watch (the streams notice)
                log.debug("sound server watch: %s", exc)
                if self._reconnect():
                    continue
                with self._lock:
                    self._blind = True
                log.debug("sound server watch: given up; devices are tried when opened")
                return
            self._stop.wait(POLL_SECONDS)

    def _reconnect(self) -> bool:
        for _ in range(8):
            if self._stop.wait(POLL_SECONDS * 4):
                return False
            try:
                self._pulse.connect()
                return True
            except Exception as exc:
                log.debug("sound server watch: %s", exc)
        return False

    def _look(self) -> None:
        pulse = self._pulse
        info = pulse.server_info()
        sources = {s.index: s for s in pulse.source_list()}
        sinks = {s.index: s for s in pulse.sink_list()}
        ours_in = [
            o for o in pulse.source_output_list() if o.proplist.get("application.process.id") == self._pid
        ]
        ours_out = [
            o for o in pulse.sink_input_list() if o.proplist.get("application.process.id") == self._pid
        ]
        with self._lock:
            self._defaults = {"input": info.default_source_name, "output": info.default_sink_name}
            self._update(
                "input",
                [sources[o.source].name for o in ours_in if o.source in sources],
                {s.name for s in sources.values()},
                {s.name for s in sources.values() if s.monitor_of_sink != 0xFFFFFFFF},
                info.default_source_name,
            )
            self._update(
                "output",
                [sinks[o.sink].name for o in ours_out if o.sink in sinks],
                {s.name for s in sinks.values()},
                set(),
                info.default_sink_name,
            )

    def _update(
        self, kind: str, where: list[str], devices: set[str], monitors: set[str], default: str
    ) -> None:
        place = self._places[kind]
        now = where[0] if where else None
        was = place.device
        if now is not None and was is None and place.lost is None:
            # A new stream: it should be on the default of when it was opened, the user's choice. (The
            # server may have moved it already, before this first look.)
            was = place.expected or now
            place.monitor_ok = was in monitors
        place.device = now
        if place.named is not None:
            ok = place.named in devices
            if now is not None and now != place.named:
                place.lost = place.lost or f"{place.named} is gone"
            self._available[kind] = ok
            return
        usable = default in devices and (place.monitor_ok or default not in monitors)
        self._available[kind] = usable
        if now is not None and now in monitors and not place.monitor_ok:
            place.lost = place.lost or f"{was or 'it'} is gone"
        elif was is not None and now is not None and now != was and place.lost is None:
            # The server took its new default for us, as it should: the user hears of it.
            if was in devices:  # moved by the user's sound settings
                self.notify(f"The {WHAT[kind]} is now {now} (it was {was}).")
            else:
                self.notify(f"The {WHAT[kind]} {was} is gone: now using {now}.")
