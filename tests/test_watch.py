"""The device watch (audio/watch.py) against a stand-in sound server: what it says when the server
itself goes away. The real server's devices coming and going are in test_devices.py."""

from __future__ import annotations

import threading
import types

from talkgpt4all.audio import watch as watch_module


class VanishingServer:
    """pulsectl's Pulse: a server where the microphone is a monitor (so "not available"), until the
    server itself goes away and cannot be reached again."""

    def __init__(self) -> None:
        self.gone = threading.Event()
        self.looked = threading.Event()

    def server_info(self):
        if self.gone.is_set():
            raise ConnectionError("the sound server went away")
        self.looked.set()
        return types.SimpleNamespace(default_source_name="spk.monitor", default_sink_name="spk")

    def source_list(self):
        return [types.SimpleNamespace(index=0, name="spk.monitor", monitor_of_sink=1)]

    def sink_list(self):
        return [types.SimpleNamespace(index=1, name="spk", monitor_of_sink=0xFFFFFFFF)]

    def source_output_list(self):
        return []

    def sink_input_list(self):
        return []

    def connect(self) -> None:
        raise ConnectionError("no sound server")

    def close(self) -> None:
        pass


def test_a_watch_that_loses_the_server_stops_saying_the_microphone_is_missing(monkeypatch):
    """Once the watch can no longer ask the server, it cannot tell: the microphone is then taken to be
    there, and opening it is the test. (Before, its last answer stayed: "no microphone" forever, Enter
    refused for the rest of the session and the listener retrying without end.)"""
    monkeypatch.setattr(watch_module, "POLL_SECONDS", 0.01)
    server = VanishingServer()
    watch = watch_module.PulseWatch(server)
    try:
        assert server.looked.wait(5)
        assert watch.available("input") is False  # only the speakers' monitor: no microphone
        server.gone.set()
        watch._thread.join(10)
        assert not watch._thread.is_alive(), "the watch never gave up"
        assert watch.available("input") is True and watch.lost("input") is None
    finally:
        watch.close()
