"""``sentences``: a built-in English corpus with planted word categories and sentence topics.

Every sentence is written from a template of its topic (sports, finance, nature, cooking,
travel) whose slots are filled with words drawn from planted categories: animals, colours,
numbers, countries, professions, emotions and motion verbs. Every other word is either a
function word (``function``) or ``other``. The corpus is a pure function of ``n`` and
``seed``.

The topic is the input's label. The word categories are per-word spans
(:meth:`SentencesSource.spans`), which extraction maps onto the tokenizer's tokens by
character offsets, so every subword piece of a planted word carries its category.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource, Span

CATEGORIES: dict[str, list[str]] = {
    "animal": ["dog", "cat", "horse", "rabbit", "tiger", "elephant", "giraffe", "dolphin", "penguin",
               "hippopotamus", "chameleon", "armadillo", "squirrel", "kangaroo", "owl", "wolf", "fox",
               "crocodile", "flamingo", "porcupine"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "pink",
               "brown", "turquoise", "crimson", "violet", "silver", "golden"],
    "number": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "fifteen", "twenty", "thirty", "forty", "hundred"],
    "country": ["France", "Japan", "Brazil", "Canada", "Kenya", "Norway", "Mexico", "India", "Egypt",
                "Mozambique", "Kyrgyzstan", "Liechtenstein", "Azerbaijan", "Madagascar", "Bangladesh",
                "Switzerland", "Argentina", "Vietnam", "Portugal", "Mongolia"],
    "profession": ["teacher", "doctor", "farmer", "lawyer", "engineer", "nurse", "pilot", "baker",
                   "carpenter", "plumber", "journalist", "pharmacist", "veterinarian", "archaeologist",
                   "choreographer", "accountant", "electrician", "librarian", "firefighter", "surgeon"],
    "emotion": ["happy", "sad", "angry", "afraid", "proud", "nervous", "excited", "calm", "jealous",
                "lonely", "grateful", "furious", "anxious", "cheerful", "ashamed", "relieved"],
    "motion": ["ran", "walked", "jumped", "swam", "flew", "drove", "climbed", "crawled", "raced",
               "wandered", "hurried", "sprinted", "drifted", "marched", "rolled", "slid", "strolled",
               "galloped"],
}

FUNCTION_WORDS = frozenset("""
a an the of in on at to from with and but or after before while during because so as by for into
over past through across near under about than then when where who that this these those it its
he she they them their his her we our was were is are had has have been be not very all each every
""".split())

TOPICS = ["sports", "finance", "nature", "cooking", "travel"]

# Slots: {animal} {colour} {number} {country} {profession} {emotion} {motion}. A slot may repeat
# with a suffix digit ({country2}) to draw a second, independent word.
TEMPLATES: dict[str, list[str]] = {
    "sports": [
        "The {profession} from {country} {motion} past the {colour} flag and felt {emotion} after the final match.",
        "In the stadium {number} fans of the {animal} team were {emotion} when the striker {motion} toward the goal.",
        "Their coach, a former {profession} from {country}, watched as the {colour} jerseys {motion} around the track.",
        "After {number} laps the runner from {country} {motion} ahead and the crowd was {emotion}.",
        "The team mascot was a {colour} {animal}, and the {profession} who wore it {motion} across the pitch.",
        "A {emotion} goalkeeper from {country} {motion} to block {number} shots in the second half.",
    ],
    "finance": [
        "The {profession} in {country} was {emotion} when the bank raised interest rates by {number} percent.",
        "Investors from {country} felt {emotion} as shares of the {colour} {animal} fund fell {number} points.",
        "Her adviser said the {colour} ledger showed {number} unpaid loans, and she {motion} out of the office.",
        "A {profession} who {motion} into the market bought {number} bonds issued by {country}.",
        "The quarterly budget of the {animal} company was {emotion} reading for every {profession} in {country}.",
        "Stock prices in {country} dropped {number} times this year, and the {emotion} {profession} sold everything.",
    ],
    "nature": [
        "A {colour} {animal} {motion} through the forest while {number} birds sang above the river.",
        "In the mountains of {country} the {profession} saw a {emotion} {animal} near the lake.",
        "The {animal} {motion} across the meadow where {number} {colour} flowers grew in the spring rain.",
        "Along the coast of {country} a {colour} {animal} {motion} beside the rocks at dawn.",
        "The {profession} counted {number} nests in the valley and felt {emotion} about the wild {animal}.",
        "Under a {colour} sky the {animal} {motion} past the old trees of {country}.",
    ],
    "cooking": [
        "The {profession} baked {number} loaves of bread with {colour} seeds from {country}.",
        "In the kitchen a {emotion} chef {motion} between the stove and a pot of soup from {country}.",
        "She chopped {number} {colour} peppers and felt {emotion} when the sauce began to boil.",
        "The recipe from {country} needs {number} eggs, a {colour} onion and a pinch of salt.",
        "A cake shaped like a {colour} {animal} made the {profession} {emotion} at the dinner party.",
        "The waiter {motion} to the table with {number} plates of roasted vegetables from {country}.",
    ],
    "travel": [
        "The {profession} {motion} through the airport to catch a flight from {country} to {country2}.",
        "We spent {number} days in {country} and felt {emotion} on the train to the coast.",
        "A {emotion} tourist {motion} down the street with a {colour} map of {country}.",
        "Our guide, a {profession} from {country}, showed us {number} temples and a {colour} {animal} statue.",
        "The hotel in {country} had {number} rooms with a view of the {colour} harbour.",
        "After the border of {country} the bus {motion} for {number} hours past villages and farms.",
    ],
}

_SLOT = re.compile(r"\{([a-z]+?)\d?\}")
_WORD = re.compile(r"[A-Za-z]+")


class SentencesSource(DataSource):
    """``sentences[:n=5000,seed=0]``: template sentences with planted word categories.

    Parameters
    ----------
    n : number of sentences (at least 1).
    seed : the random seed; the same ``n`` and ``seed`` give the same corpus.

    The table has ``input_id``, ``label`` / ``label_name`` (the topic) and ``text``. Per-word
    spans carry ``word`` and ``category`` (one of :data:`CATEGORIES`, ``function`` or
    ``other``).
    """

    modality = "text"
    span_attributes = ("word", "category")
    span_fill = {"word": "", "category": "other"}

    def __init__(self, n: int = 5000, seed: int = 0):
        n, seed = int(n), int(seed)
        if n < 1:
            raise SpecError(f"sentences: n must be at least 1, got {n}")
        self.spec = f"sentences:n={n},seed={seed}"
        self.n, self.seed = n, seed
        self.class_names = list(TOPICS)
        rng = np.random.default_rng(seed)
        texts, labels, spans = [], [], []
        for _ in range(n):  # one sentence at a time, so a smaller n gives a prefix of a larger one
            t = int(rng.integers(len(TOPICS)))
            topic = TOPICS[t]
            template = TEMPLATES[topic][int(rng.integers(len(TEMPLATES[topic])))]
            text, sp = _fill(template, rng)
            texts.append(text)
            labels.append(int(t))
            spans.append(sp)
        self._spans = spans
        self._table = pd.DataFrame({
            "input_id": np.arange(n, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "label_name": [TOPICS[l] for l in labels],
            "text": texts,
        })

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        texts = self._table["text"].to_numpy()
        return [str(texts[int(i)]) for i in indices]

    def spans(self, indices: Sequence[int] | np.ndarray) -> list[list[Span]]:
        return [self._spans[int(i)] for i in indices]


def _fill(template: str, rng: np.random.Generator) -> tuple[str, list[Span]]:
    """One sentence from a template, with a span for every word: planted, function or other."""
    parts: list[str] = []
    planted: list[tuple[int, int, str, str]] = []
    pos, length = 0, 0
    for m in _SLOT.finditer(template):
        literal = template[pos:m.start()]
        parts.append(literal)
        length += len(literal)
        category = m.group(1)
        words = CATEGORIES[category]
        word = words[int(rng.integers(len(words)))]
        planted.append((length, length + len(word), word, category))
        parts.append(word)
        length += len(word)
        pos = m.end()
    parts.append(template[pos:])
    text = "".join(parts)
    spans: list[Span] = []
    k = 0
    for m in _WORD.finditer(text):
        s, e = m.span()
        if k < len(planted) and planted[k][0] == s:
            _, e2, word, category = planted[k]
            spans.append((s, e2, {"word": word, "category": category}))
            k += 1
            continue
        word = m.group(0)
        category = "function" if word.lower() in FUNCTION_WORDS else "other"
        spans.append((s, e, {"word": word, "category": category}))
    return text, spans
