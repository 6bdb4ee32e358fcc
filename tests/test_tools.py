"""Tools: calls found in what models write (as it streams), calls run with a timeout and their failures
given back as results, and the built-in time and timer tools."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from typing import ClassVar

import pytest

from fakes import FakeChat, FakeDisplay, FakeSink, FakeSynth, make_session
from talkgpt4all.tools import CallFinder, Tool, Toolbox, ToolCall, check_arguments, find_calls, parse_call
from talkgpt4all.tools.builtin import Due, Timers, time_tool, timer_tool


def pieces(text: str, size: int) -> list[str]:
    """A reply as a model streams it: a few characters at a time."""
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_a_qwen_tool_call_is_taken_out_of_the_speech_however_it_streams(size):
    reply = 'Let me check. <tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call> One moment.'
    speech, calls = find_calls(pieces(reply, size))
    assert speech == "Let me check.  One moment."
    assert calls == [ToolCall("get_time", {})]


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_a_llama_bare_json_call_is_a_call_and_never_speech(size):
    reply = '{"name": "set_timer", "parameters": {"seconds": 180, "message": "Tea is ready."}}'
    speech, calls = find_calls(pieces(reply, size))
    assert speech == ""
    assert calls == [ToolCall("set_timer", {"seconds": 180, "message": "Tea is ready."})]


def test_two_bare_calls_and_a_reply_that_only_looks_like_json():
    speech, calls = find_calls(['{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}'])
    assert speech == "" and [c.name for c in calls] == ["a", "b"]
    speech, calls = find_calls(["{Curly braces} are used in C."])
    assert speech == "{Curly braces} are used in C." and calls == []


def test_text_with_a_lone_angle_bracket_is_kept_and_a_broken_call_is_not_spoken():
    speech, calls = find_calls(pieces("3 < 4 and <tool is a word.", 2))
    assert speech == "3 < 4 and <tool is a word." and calls == []
    finder = CallFinder()
    said = finder.feed("Sure. <tool_call>{not json}</tool_call>Done.") + finder.flush()
    assert said == "Sure. Done." and finder.calls == [] and finder.broken == ["{not json}"]


def test_openai_arguments_come_as_a_json_string():
    assert parse_call('{"name": "get_time", "arguments": "{}", "id": "call_1"}') == ToolCall(
        "get_time", {}, "call_1"
    )
    assert parse_call('{"name": "x", "arguments": "not json"}') is None
    assert parse_call("[1, 2]") is None


def test_arguments_are_checked_against_the_schema():
    schema = timer_tool(Timers(lambda due: None)).parameters
    assert check_arguments({"seconds": 5}, schema) is None
    assert check_arguments({}, schema) == "missing argument seconds"
    assert check_arguments({"seconds": "five"}, schema) == "seconds should be a number"
    assert check_arguments({"seconds": True}, schema) == "seconds should be a number"
    assert check_arguments({"seconds": 5, "volume": 3}, schema) == "unknown argument 'volume'"


def test_a_call_that_fails_or_hangs_or_names_no_tool_is_a_one_line_result_for_the_model():
    box = Toolbox()
    release = threading.Event()
    box.add(Tool("boom", "fails", {"type": "object"}, lambda: 1 / 0))
    box.add(Tool("slow", "hangs", {"type": "object"}, lambda: release.wait(30), timeout=0.3))
    box.add(Tool("echo", "says it back", {"type": "object"}, lambda **kw: kw))
    failed = box.call(ToolCall("boom", {}))
    assert failed.error and failed.content == "error: boom failed: division by zero"
    began = time.monotonic()
    hung = box.call(ToolCall("slow", {}))
    assert hung.error and hung.content == "error: slow took more than 0.3 s"
    assert time.monotonic() - began < 2
    release.set()
    missing = box.call(ToolCall("nope", {}))
    assert missing.error and "there is no tool 'nope'" in missing.content and "echo" in missing.content
    said = box.call(ToolCall("echo", {"word": "héllo"}))
    assert not said.error and said.content == '{"word": "héllo"}'


def test_a_call_is_cancelled_at_once_by_a_stop():
    box = Toolbox()
    box.add(Tool("slow", "hangs", {"type": "object"}, lambda: time.sleep(5), timeout=30))
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    began = time.monotonic()
    result = box.call(ToolCall("slow", {}), cancelled=stop)
    assert result.error and "cancelled" in result.content and time.monotonic() - began < 1


def test_two_tools_of_one_name_are_refused():
    box = Toolbox()
    box.add(time_tool())
    with pytest.raises(ValueError, match="two tools are named 'get_time'"):
        box.add(time_tool())


def test_the_time_tool_says_the_local_date_time_and_zone():
    fixed = dt.datetime(2026, 12, 1, 9, 5, tzinfo=dt.timezone(dt.timedelta(hours=1), "CET"))
    tool = time_tool(lambda: fixed)
    assert tool.run() == {
        "date": "Tuesday 01 December 2026",
        "time": "09:05",
        "time_zone": "CET",
        "iso": "2026-12-01T09:05:00+01:00",
    }
    assert tool.schema()["function"]["name"] == "get_time"


def test_a_timer_says_its_message_when_due_and_stops_with_the_session():
    due: list[Due] = []
    fired = threading.Event()
    timers = Timers(lambda d: (due.append(d), fired.set()))
    box = Toolbox()
    box.add(timer_tool(timers))
    result = box.call(ToolCall("set_timer", {"seconds": 0.2, "message": "Tea is ready."}))
    assert not result.error and "Tea is ready." in result.content
    assert fired.wait(5) and due == [Due("Tea is ready.", 0.2)]
    box.call(ToolCall("set_timer", {"seconds": 600}))
    assert timers.running() == 1
    began = time.monotonic()
    timers.close()
    assert timers.running() == 0 and time.monotonic() - began < 1
    bad = box.call(ToolCall("set_timer", {"seconds": -3}))
    assert bad.error and "1 second to 24 hours" in bad.content


class _ToolServer(http.server.BaseHTTPRequestHandler):
    """A stand-in OpenAI server that answers with a streamed tool call, as OpenAI's API and llama-server
    --jinja stream them: a few words, then the call's id and name, then its arguments' JSON in pieces."""

    asked: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ToolServer.asked.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        deltas = [
            {"content": "Let me look."},
            {
                "tool_calls": [
                    {"index": 0, "id": "call_7", "type": "function", "function": {"name": "set_timer"}}
                ]
            },
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"seconds": 18'}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '0, "message": "Tea is ready."}'}}]},
        ]
        for i, delta in enumerate(deltas):
            event = {
                "choices": [{"delta": delta, "finish_reason": "tool_calls" if i == len(deltas) - 1 else None}]
            }
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


def test_a_servers_streamed_tool_call_comes_out_whole_and_is_found_like_a_local_models():
    from talkgpt4all.llm import GenerationOptions
    from talkgpt4all.llm.remote import OpenAIChatModel

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ToolServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", None, 4096)
        tools = [timer_tool(Timers(lambda due: None)).schema()]
        messages = [{"role": "user", "content": "Set a tea timer for three minutes."}]
        speech, calls = find_calls(model.stream(messages, GenerationOptions(64, 0.0, -1), tools=tools))
    finally:
        server.shutdown()
    assert _ToolServer.asked[-1]["tools"] == tools
    assert speech == "Let me look."
    assert calls == [ToolCall("set_timer", {"seconds": 180, "message": "Tea is ready."}, "call_7")]


# ------------------------------------------------------------------ a turn that calls tools


class ToolChat(FakeChat):
    """A chat model that can call tools: it replies with its canned texts, and keeps the tools it was
    given at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: list[list[dict] | None] = []

    def tool_support(self) -> str | None:
        return None

    def stream(self, messages, options, tools=None):  # type: ignore[no-untyped-def, override]
        self.tools.append(tools)
        return super().stream(messages, options)


CALL = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'


def toolbox(*tools: Tool) -> Toolbox:
    box = Toolbox()
    for tool in tools:
        box.add(tool)
    return box


def clock_tool(run=lambda: {"time": "10:42"}, timeout: float = 10.0) -> Tool:  # type: ignore[no-untyped-def]
    return Tool("get_time", "the time", {"type": "object", "properties": {}}, run, timeout=timeout)


def test_a_reply_that_calls_a_tool_is_answered_from_its_result_and_the_call_is_never_shown_or_said(tmp_path):
    from talkgpt4all.transcript import TranscriptWriter, read_transcript

    chat = ToolChat().enqueue(f"Let me look. {CALL}", "It is 10:42.")
    display, synth, sink = FakeDisplay(), FakeSynth(), FakeSink()
    path = tmp_path / "t.jsonl"
    session = make_session(chat, display, synthesizer=synth, sinks=[sink], transcript=TranscriptWriter(path))
    session.toolbox = toolbox(clock_tool())
    result = session.reply("What time is it?", time.perf_counter())
    assert result.reply == "Let me look. It is 10:42."
    assert display.lines[-1] == "AI: Let me look. It is 10:42."
    assert "".join(synth.spoken) == "Let me look.It is 10:42."  # nothing of the call is read aloud
    # The model was given the tool, and then its call and the result, in the tool role, as data.
    assert chat.tools[0] and chat.tools[0][0]["function"]["name"] == "get_time"
    second = chat.calls[1]
    assert second[-2]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "get_time",
        "content": '{"time": "10:42"}',
    }
    assert all(m["role"] != "system" or "10:42" not in m["content"] for m in second)
    # The transcript keeps the call, and --resume gives the model the same history.
    [past] = read_transcript(path)
    assert past.tools == [{"name": "get_time", "arguments": {}, "result": '{"time": "10:42"}'}]
    from talkgpt4all.app import resumed
    from talkgpt4all.settings import Config

    again = resumed(Config.build({"llm": {"system_prompt": "be brief"}}), [past])
    assert again.messages == session.conversation.messages


def test_a_failing_tool_is_one_line_the_model_hears_of_it_and_the_turn_goes_on():
    def broken() -> None:
        raise OSError("the clock is\nunplugged")

    chat = ToolChat().enqueue(CALL, "I could not tell the time.")
    display = FakeDisplay()
    session = make_session(chat, display)
    session.toolbox = toolbox(clock_tool(broken))
    result = session.reply("What time is it?", time.perf_counter())
    assert result.reply == "I could not tell the time." and result.error is None
    assert "get_time: get_time failed: the clock is unplugged" in display.lines
    assert chat.calls[1][-1]["content"] == "error: get_time failed: the clock is unplugged"
    assert result.tools[0]["error"] is True


def test_a_slow_call_gets_a_spoken_one_moment_in_the_turns_language():
    chat = ToolChat().enqueue(CALL, "现在十点。")
    synth = FakeSynth()
    session = make_session(chat, synthesizer=synth, sinks=[FakeSink()])
    session.toolbox = toolbox(clock_tool(lambda: time.sleep(1.3) or "10:00"))
    session.reply("现在几点？", time.perf_counter(), language="zh")
    assert synth.spoken == ["请稍等。", "现在十点。"]


def test_a_stop_during_a_call_cancels_it_and_ends_the_turn():
    started = threading.Event()

    def hangs() -> str:
        started.set()
        threading.Event().wait(30)
        return "never"

    chat = ToolChat().enqueue(CALL, "never asked")
    session = make_session(chat)
    session.toolbox = toolbox(clock_tool(hangs, timeout=60))
    threading.Thread(target=lambda: started.wait(5) and session.stop(), daemon=True).start()
    began = time.monotonic()
    result = session.reply("What time is it?", time.perf_counter())
    assert time.monotonic() - began < 5
    assert result.interrupted and len(chat.calls) == 1  # the model was not asked again
    assert result.tools[0]["result"] == "error: the call was cancelled"


def test_a_model_without_tool_support_is_given_none():
    chat = FakeChat().enqueue(CALL)  # a plain back end: it cannot take tools
    session = make_session(chat)
    session.toolbox = toolbox(clock_tool())
    assert session.tools is None
    result = session.reply("What time is it?", time.perf_counter())
    assert result.tools == [] and len(chat.calls) == 1


# ------------------------------------------------------------------ a tool that changes something asks first


def deleting_tool(deleted: list[str]) -> Tool:
    return Tool(
        "delete_note",
        "delete a note",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        lambda name: deleted.append(name) or f"deleted {name}",
        destructive=True,
    )


DELETE = '<tool_call>{"name": "delete_note", "arguments": {"name": "shopping"}}</tool_call>'


@pytest.mark.parametrize("answer", ["No.", "No, don't.", "Nope", "不要。"])
def test_a_destructive_call_is_asked_about_and_no_means_no_call(answer):
    deleted: list[str] = []
    chat = ToolChat().enqueue(f"Sure. {DELETE}")
    display, synth, sink = FakeDisplay(), FakeSynth(), FakeSink()
    session = make_session(chat, display, synthesizer=synth, sinks=[sink])
    session.toolbox = toolbox(deleting_tool(deleted))
    asked = session.reply("Delete my shopping note.", time.perf_counter())
    assert asked.reply == "Sure. Shall I delete note, with name shopping? Say yes or no."
    assert "Say yes or no." in "".join(synth.spoken) and "{" not in "".join(synth.spoken)
    assert deleted == [] and asked.tools == []
    calls_before = len(chat.calls)
    refused = session.reply(answer, time.perf_counter())
    assert deleted == [], "no means no call"
    assert refused.reply in ("All right, I won't.", "好的，不做了。") and refused.tools == []
    assert len(chat.calls) == calls_before  # said at once, not the model's to get wrong


@pytest.mark.parametrize("answer", ["Yes.", "Yes, please do it.", "OK", "好的。"])
def test_a_destructive_call_is_made_on_a_spoken_or_typed_yes_and_the_model_answers_from_it(answer):
    deleted: list[str] = []
    chat = ToolChat().enqueue(DELETE, "Your shopping note is gone.")
    display, synth = FakeDisplay(), FakeSynth()
    session = make_session(chat, display, synthesizer=synth, sinks=[FakeSink()])
    session.toolbox = toolbox(deleting_tool(deleted))
    session.reply("Delete my shopping note.", time.perf_counter())
    assert deleted == []
    done = session.reply(answer, time.perf_counter())
    assert deleted == ["shopping"]
    assert done.reply == "Your shopping note is gone."
    [made] = done.tools
    assert made == {"name": "delete_note", "arguments": {"name": "shopping"}, "result": "deleted shopping"}
    # The model heard the answer, then the call and its result, as data.
    last = chat.calls[-1]
    assert last[-3]["role"] == "user" and last[-1] == {
        "role": "tool", "tool_call_id": "call_1", "name": "delete_note", "content": "deleted shopping"
    }  # fmt: skip


def test_a_turn_that_is_neither_yes_nor_no_forgets_the_question():
    deleted: list[str] = []
    chat = ToolChat().enqueue(DELETE, "Paris.", "Fine.")
    session = make_session(chat, FakeDisplay(), synthesizer=FakeSynth(), sinks=[FakeSink()])
    session.toolbox = toolbox(deleting_tool(deleted))
    session.reply("Delete my shopping note.", time.perf_counter())
    assert session.reply("What is the capital of France?", time.perf_counter()).reply == "Paris."
    session.reply("Yes.", time.perf_counter())  # too late: that question was forgotten
    assert deleted == []


@pytest.mark.parametrize(
    "text, meaning",
    [
        ("Yes.", True), ("yeah, go ahead", True), ("Okay!", True), ("Sure, do it.", True), ("是的。", True),
        ("可以", True), ("No.", False), ("No, don't do that.", False), ("Don't.", False), ("不要", False),
        ("不是。", False), ("Cancel it.", False), ("What is the weather like in Paris today then?", None),
        ("I'm not sure.", None), ("", None), ("今天天气怎么样？", None),
        ("Yes I think we should maybe do that later", None),
    ],
)  # fmt: skip
def test_yes_or_no(text, meaning):
    from talkgpt4all.tools import yes_or_no

    assert yes_or_no(text) is meaning


def test_a_tool_that_is_not_built_in_is_one_line_and_exit_2():
    from conftest import run_chat

    run = run_chat("--tools", "time,weather", "--text", "--no-play", stdin="hi\n")
    assert run.returncode == 2 and len(run.stderr_lines) == 1, run.stderr
    assert "no built-in tool 'weather'" in run.stderr and "--list-tools" in run.stderr
