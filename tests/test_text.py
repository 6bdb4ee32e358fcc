from talkgpt4all.text import has_words, sentences, speakable


def split(text: str, size: int = 3) -> list[str]:
    """Feed text in small token-like pieces, as a model streams it."""
    return list(sentences(text[i : i + size] for i in range(0, len(text), size)))


def test_english_sentences_come_out_one_by_one():
    assert split("Hello there! How are you? I am fine.") == ["Hello there!", "How are you?", "I am fine."]


def test_sentence_is_yielded_before_the_stream_ends():
    def tokens():
        yield from ["The capital", " is Paris.", " It is"]
        raise AssertionError("the first sentence should have been yielded before the next token was pulled")

    stream = sentences(tokens())
    assert next(stream) == "The capital is Paris."


def test_abbreviations_initials_and_decimals_do_not_split():
    text = "Dr. Smith paid 3.5 dollars, e.g. a coffee. J. R. R. Tolkien wrote it. Done"
    assert split(text) == ["Dr. Smith paid 3.5 dollars, e.g. a coffee.", "J. R. R. Tolkien wrote it.", "Done"]


def test_chinese_punctuation_splits_without_spaces():
    assert split("你好！今天天气很好。我们去公园吧？好", 2) == [
        "你好！",
        "今天天气很好。",
        "我们去公园吧？",
        "好",
    ]


def test_mixed_quotes_and_newlines():
    assert split('He said "stop." Then left\nNew line here') == [
        'He said "stop."',
        "Then left",
        "New line here",
    ]


def test_nothing_in_nothing_out():
    assert split("") == []
    assert split("   \n ") == []


def test_speakable_drops_markdown():
    assert speakable("**Paris** is the `capital`.\n# Title\n- item") == "Paris is the capital. Title item"


def test_has_words():
    assert has_words("Paris")
    assert has_words("巴黎")
    assert not has_words(" ... !? ")


def test_a_long_first_sentence_may_be_cut_at_a_comma():
    text = "Well, the capital of France, as you know, is Paris. Yes, it is, truly."
    pieces = list(sentences((text[i : i + 3] for i in range(0, len(text), 3)), first_clause_words=4))
    # "Well," is too short to be cut; the first comma after four words is.
    assert pieces == ["Well, the capital of France,", "as you know, is Paris.", "Yes, it is, truly."]


def test_a_short_first_sentence_is_not_cut():
    assert list(sentences(["Yes, it is. Fine, thanks."], first_clause_words=4)) == [
        "Yes, it is.",
        "Fine, thanks.",
    ]


def test_chinese_first_clause():
    pieces = list(sentences(["北京是中国的首都，也是一座古老的城市。它很大。"], first_clause_words=4))
    assert pieces == ["北京是中国的首都，", "也是一座古老的城市。", "它很大。"]
