"""The words of a pause as evidence for the end of a turn (endpoint.py): the rule alone. What it does
to turns on real speech is in test_turn.py, and in bench/devices.py's paused sentences."""

from __future__ import annotations

import pytest

from talkgpt4all.endpoint import finished, unfinished


@pytest.mark.parametrize(
    "text",
    [
        "Tell me about the",
        "Tell me about the.",  # Whisper's full stop after anything
        "I would like to",
        "What is the best way to?",
        "Tell me what you know about?",  # Whisper's question mark after a cut sentence
        "Where are you from?",  # a whole question, held all the same: a wait is cheaper than a cut
        "I'd like to know about the...",
        "because",
        "The capital of France is",
        "Hmm,",
        "我想知道关于",
        "我想去北京和",
    ],
)
def test_words_that_cannot_end_a_sentence(text: str):
    assert unfinished(text) and not finished(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Why is the sky blue?",
        "Do you know what time it is?",
        "What do you think?",
        "Thank you.",
        "No.",
        "Tell me about that.",  # a whole sentence: the audio model and the merge of turns are the net here
        "法国的首都是哪里？",
    ],
)
def test_words_that_read_as_a_whole_sentence(text: str):
    assert finished(text) and not unfinished(text)


def test_no_words_are_neither():
    assert not finished("") and not unfinished("") and not finished("...")
