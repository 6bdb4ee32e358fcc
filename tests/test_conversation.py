import pytest

from talkgpt4all.conversation import Conversation, MessageTooLong


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def history(turns: int) -> Conversation:
    c = Conversation("sys prompt here")  # 3 words
    for i in range(turns):
        c.commit(f"question number {i}", f"answer number {i}")  # 3 words each
    return c


def test_system_prompt_comes_first_and_turns_follow():
    c = Conversation("be brief")
    c.commit("hi", "hello")
    fitted = c.fit("bye", words, budget=100)
    assert [m["role"] for m in fitted.messages] == ["system", "user", "assistant", "user"]
    assert fitted.dropped == 0 and fitted.tokens == words(fitted.messages)


def test_trims_oldest_turns_first_and_keeps_the_system_prompt():
    c = history(5)
    fitted = c.fit("last question now", words, budget=3 + 6 * 2 + 3)
    assert fitted.messages[0] == {"role": "system", "content": "sys prompt here"}
    assert [m["content"] for m in fitted.messages[1:]] == [
        "question number 3",
        "answer number 3",
        "question number 4",
        "answer number 4",
        "last question now",
    ]
    assert fitted.messages[1]["role"] == "user"  # never starts with an orphan reply
    assert fitted.tokens == words(fitted.messages) <= 18
    # Nothing is forgotten until the turn is committed.
    assert len(c.turns) == 10 and fitted.dropped == 6
    c.commit("last question now", "ok", dropped=fitted.dropped)
    assert [m["content"] for m in c.turns[:2]] == ["question number 3", "answer number 3"]


def test_a_target_trims_in_large_steps_so_trimming_is_rare():
    c = history(8)  # 3 + 8 * 6 words, then a 3-word question
    budget = 3 + 6 * 6 + 3
    one_by_one = c.fit("last question now", words, budget)
    in_steps = c.fit("last question now", words, budget, target=budget // 2)
    assert one_by_one.tokens <= budget and in_steps.tokens <= budget // 2
    assert in_steps.dropped > one_by_one.dropped
    # Below the budget nothing is trimmed, whatever the target.
    assert c.fit("q", words, budget=1000, target=10).dropped == 0


def test_history_within_budget_is_untouched():
    c = history(1)
    assert len(c.fit("e", words, budget=100).messages) == 4


def test_a_message_too_long_alone_is_a_clear_error_and_the_history_stays():
    c = history(3)
    with pytest.raises(MessageTooLong, match="too long"):
        c.fit("word " * 50, words, budget=10)
    assert len(c.turns) == 6  # the three turns are all still there


def test_fitting_a_long_history_counts_a_few_times_not_once_per_turn():
    c = history(2000)
    calls = []

    def counting(messages):
        calls.append(1)
        return words(messages)

    fitted = c.fit("last question now", counting, budget=3 + 6 * 10 + 3)
    assert fitted.dropped == 2 * 1990 and len(calls) < 20


def test_a_cut_off_reply_is_kept_marked():
    c = Conversation("")
    c.commit("tell me a story", "Once upon a time", cut_off=True)
    assert c.turns[-1] == {"role": "assistant", "content": "Once upon a time …"}
