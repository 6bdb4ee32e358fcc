import pytest

from talkgpt4all.conversation import Conversation
from talkgpt4all.errors import TalkError


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_system_prompt_comes_first_and_turns_follow():
    c = Conversation("be brief")
    c.add_user("hi")
    c.add_assistant("hello")
    c.add_user("bye")
    assert [m["role"] for m in c.messages] == ["system", "user", "assistant", "user"]


def test_trims_oldest_turns_first_and_keeps_the_system_prompt():
    c = Conversation("sys prompt here")  # 3 words
    for i in range(5):
        c.add_user(f"question number {i}")  # 3 words
        c.add_assistant(f"answer number {i}")  # 3 words
    c.add_user("last question now")
    fitted = c.fit(words, budget=3 + 6 * 2 + 3)
    assert fitted[0] == {"role": "system", "content": "sys prompt here"}
    assert [m["content"] for m in fitted[1:]] == [
        "question number 3",
        "answer number 3",
        "question number 4",
        "answer number 4",
        "last question now",
    ]
    assert fitted[1]["role"] == "user"  # never starts with an orphan reply
    assert words(fitted) <= 18


def test_history_within_budget_is_untouched():
    c = Conversation("s")
    c.add_user("a b")
    c.add_assistant("c d")
    c.add_user("e")
    assert len(c.fit(words, budget=100)) == 4


def test_a_message_too_long_alone_is_a_clear_error():
    c = Conversation("s")
    c.add_user("word " * 50)
    with pytest.raises(TalkError, match="too long"):
        c.fit(words, budget=10)
