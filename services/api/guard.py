"""guard: keep the system prompt out of answers, even when a model recites it.

A passage can tell the model to print its instructions, and a model may obey although the prompt forbids it, so
the answer is checked against the prompt itself. Every word that belongs to a run of at least `RUN` (8)
consecutive words also found in SYSTEM_PROMPT is removed, and each maximal stretch of removed words (with the
spaces and wordless tokens such as "—" between them) becomes one `(removed)`. Markers and links inside a
recital go with it, so the prompt's own examples ("like [1] or [2][3]") never become citations. Words are
compared normalised (lowercase, letters and digits only, tokens with neither skipped), so case, punctuation
and markdown do not hide a recital, and as a visitor may see them: the guard runs after invalid markers are
dropped (so `[99]` sprinkled into a recital does not break its runs) and reads a URL as the "(link removed)" it
may become (so that "link" cannot complete a run). Eight words is long enough that an ordinary answer does
not collide with the prompt by chance, and short enough that only scraps of a clause can get out.

The refusal sentence NO_ANSWER is part of the prompt because the model must say it, so an 8-word window lying
entirely within it is not a match. A recital that runs into that sentence is still removed whole, except up
to two words of it where the answer starts or ends with the sentence (the windows that would reach them are
the exempt ones).

Streaming: a word is judged once whitespace follows it (until then it may grow). When word k is complete the
only new window is words k-7..k. A word i leaves the guard only when word i+7 is complete, that is after the
last window containing it (the one it starts) has been judged. So whenever a window matches, all eight of
its words are still held and can be removed: the guard holds back the last eight words (the seven newest
complete ones and the one being written) and never takes back anything it released. A removed word writes
`(removed)` only if the word released before it was kept, so a stretch cut by a release still reads as one;
the space after a kept word is shown with it, since it is shown whatever follows. Everything depends only on
the text, not on how it was split, so the stream spells out the whole-text result. A feed costs O(new text +
the unfinished word): one set look-up per completed word.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from services.api.markup import LINK_REMOVED, URL
from services.api.prompt import NO_ANSWER, SYSTEM_PROMPT

RUN = 8
REMOVED = "(removed)"
WORD = re.compile(r"\S+")
LAST_SPACE = re.compile(r"\s(?=\S*\Z)")  # tokens before it are complete: whitespace follows them


def word_key(token: str) -> str:
    """A token as it is compared: lowercase letters and digits only ("Don't," → "dont"; "—" → "")."""
    return "".join(c for c in token.lower() if c.isalnum())


def shown_keys(token: str) -> list[str]:
    """The words of `token` as a visitor may see it: markup.Links may show a URL as "(link removed)", and the
    guard must not let that "link" complete a run of prompt words (as in "the citations already link")."""
    return [k for k in map(word_key, URL.sub(LINK_REMOVED, token).split()) if k]


def runs(text: str, n: int = RUN) -> set[tuple[str, ...]]:
    """Every `n` consecutive (normalised, non-empty) words of `text`."""
    keys = [k for k in map(word_key, re.findall(r"\S+", text)) if k]
    return {tuple(keys[i:i + n]) for i in range(len(keys) - n + 1)}


FORBIDDEN = frozenset(runs(SYSTEM_PROMPT) - runs(NO_ANSWER))


@dataclass
class _Word:
    before: str  # what lies between the previous word and this one: spaces, wordless tokens
    text: str
    key: str
    removed: bool = False


class PromptGuard:
    """Removes runs of prompt text from a stream: `feed` returns what is safe to pass on now, `flush` the rest."""

    def __init__(self, forbidden: Collection[tuple[str, ...]] = FORBIDDEN, run: int = RUN) -> None:
        self.forbidden, self.run = forbidden, run
        self.held: deque[_Word] = deque()
        self.gap = ""  # complete text after the last word: spaces and wordless tokens
        self.rest = ""  # not yet split into tokens: spaces and the token being written
        self.removing = False  # the last word released was removed

    def feed(self, piece: str) -> str:
        self.rest += piece
        if last := LAST_SPACE.search(self.rest):
            pos = 0
            for m in WORD.finditer(self.rest, 0, last.start()):
                self._token(self.rest[pos:m.start()], m.group())
                pos = m.end()
            self.rest = self.rest[pos:]
        return self._release(self.run - 1)

    def flush(self) -> str:
        rest, self.rest = self.rest, ""
        token = rest.lstrip()
        if token:  # the last token had no whitespace after it: the text ends there
            self._token(rest[:len(rest) - len(token)], token)
            rest = ""
        out = self._release(0) + self.gap + rest
        self.gap, self.removing = "", False
        return out

    def _token(self, space: str, token: str) -> None:
        keys = shown_keys(token)
        if not keys:
            self.gap += space + token
            return
        for i, key in enumerate(keys):  # the token's text goes with its first word; any others are empty
            self.held.append(_Word(self.gap + space, token, key) if i == 0 else _Word("", "", key))
            self.gap = ""
            window = list(self.held)[-self.run:]  # fewer only while fewer than `run` words were written at all
            if len(window) == self.run and tuple(w.key for w in window) in self.forbidden:
                for w in window:
                    w.removed = True

    def _release(self, keep: int) -> str:
        out: list[str] = []
        while len(self.held) > keep:
            w = self.held.popleft()
            if not w.removed:
                out += (w.before, w.text)
            elif not self.removing:
                out += (w.before, REMOVED)
            self.removing = w.removed
        if self.held and not self.removing:  # the space after a kept word shows whatever follows
            out.append(self.held[0].before)
            self.held[0].before = ""
        return "".join(out)
