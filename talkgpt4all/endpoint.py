"""What the words say about the end of a turn: the transcript of a pause, as evidence both ways.

Hands-free, the speech so far is transcribed as the user pauses (speculation.py), and the transcript is
there a few hundred milliseconds into the pause. The audio model (Smart Turn) hears how the words were
said; the words themselves say more than it can about grammar:

- words that cannot end a sentence ("about the", "I would like to", "because", "和", "因为") keep the
  turn open whatever the audio says: the speaker is looking for the next word;
- anything else, which Whisper writes as a finished sentence, ends the turn after a short pause even when
  the audio model is unsure, rather than after its longest wait (Smart Turn took espeak-ng's "Why is the
  sky blue?" for unfinished, and the turn waited 1.5 s).

A rule, not a model: the list of endings is short and the audio model still decides the rest (see
audio/vad.py's Segmenter, and bench/devices.py's paused sentences for what it costs and saves).
"""

from __future__ import annotations

import re

# Words an English sentence does not end on: articles, possessives, prepositions and conjunctions. The
# speaker paused after one of them to look for the next word. A question may end on a preposition
# ("Where are you from?"), but Whisper writes a question mark after a cut sentence as readily ("Tell me
# what you know about?"): holding a finished question costs a wait of unfinished_ms, cutting a sentence
# in two costs the user's words, so prepositions hold the turn even then.
# fmt: off
_OPEN_WORDS = frozenset("""
    a an the my your our their its every to and or but nor because although though unless whereas
    whether than i'm i'd i'll we're you're they're it's what's that's there's
    of in on at for with about from by into onto over under between through during without within
    across against among around toward towards upon via per
""".split())
# These end a question ("Do you know where it is?", "Why?", "What is it like?"), but not a statement
# ("I would like", "The capital of France is").
_OPEN_UNLESS_ASKED = frozenset("""
    like as if since until while is are was were be been being am do does did have has had will would
    shall should can could may might must how what which who whom whose where when why
""".split())
# Chinese sentences do not end on these either: structural particles, prepositions, conjunctions.
_OPEN_CHINESE = (
    "的", "和", "跟", "与", "或者", "因为", "所以", "但是", "可是", "如果", "关于", "在", "把",
    "被", "给", "对", "从", "向", "为了", "还有", "然后", "就是", "是", "想", "要", "我想",
)
# fmt: on
_TRAILING = re.compile(r"(\.\.\.|…|,|，|、|-|—|:|：)\s*$")
_WORD = re.compile(r"[\w']+", re.UNICODE)


def unfinished(text: str) -> bool:
    """Whether these words stop where a sentence cannot end: on a word like "the", "to" or "because", on
    a comma, or trailing off ("..."). Whisper's own final full stop is not taken as evidence: it writes
    one after nearly anything."""
    text = text.strip()
    if not text:
        return False
    if _TRAILING.search(text):
        return True
    bare = text.rstrip(" .。!！?？\"'”）)")
    if bare.endswith(_OPEN_CHINESE):
        return True
    words = _WORD.findall(bare.lower().replace("’", "'"))
    if not words:
        return False
    asked = text.rstrip(" \"'”）)").endswith(("?", "？"))
    return words[-1] in _OPEN_WORDS or (not asked and words[-1] in _OPEN_UNLESS_ASKED)


def finished(text: str) -> bool:
    """Whether these words read as a whole sentence or question: something was said, and it does not
    stop where a sentence cannot end."""
    return bool(_WORD.search(text)) and not unfinished(text)
