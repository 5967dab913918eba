"""Query sentences: four kinds of templates, paraphrased with synonyms, tenses and fillers.

Kinds (the target is the span the sentence describes):

- ``single``: "person opens the door" (one event; its type occurs once in the video);
- ``sequence``: "person opens the door and then closes the box" (two consecutive events; the
  target spans both);
- ``ordinal``: "person opens the door for the second time" (the type occurs twice);
- ``context``: "after opening the box, person closes the door" (the type occurs twice; the
  preceding event picks one).

A :class:`Style` gives each preset its benchmark's flavour: Charades-STA's short lowercase
present-tense sentences, ActivityNet Captions' long ones with filler clauses, TACoS's past
tense without a final period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from momentloc.synth.concepts import Domain

Kind = Literal["single", "sequence", "ordinal", "context"]
KINDS: tuple[Kind, ...] = ("single", "sequence", "ordinal", "context")

# {S} subject, {V} finite verb (+ optional adverb), {O} object phrase, {C} the continuation
# verb of a coordination, {G} a gerund, {s} a subject that does not start the sentence.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "single": ("{S} {V} {O}",),
    "sequence": ("{S} {V} {O} and then {C2} {O2}", "{S} {V} {O}, then {C2} {O2}",
                 "{S} {V} {O} and afterwards {C2} {O2}"),
    "second": ("{S} {V} {O} for the second time", "{S} {V} {O} again",
               "{S} {V} {O} a second time"),
    "first": ("{S} {V} {O} for the first time", "{S} {V} {O} before doing it again"),
    "context": ("after {G1} {O1}, {s} {V2} {O2}", "{S} {V2} {O2} after {G1} {O1}",
                "right after {G1} {O1}, {s} {V2} {O2}"),
}

_UNCOUNTABLE = {"milk", "oil", "hair", "bread", "laundry", "ginger"}


@dataclass(frozen=True)
class Style:
    """How a preset's sentences look.

    Attributes:
        subjects: sentence subjects, drawn uniformly.
        tenses: ``(tense, weight)``; tenses are ``present`` ("opens"), ``progressive``
            ("is opening"), ``seen`` ("is seen opening") and ``past`` ("opened").
        articles: ``(article, weight)`` before object nouns (``""`` for none).
        adverbs / adverb_prob: adverbs placed before the verb, and how often.
        fillers / filler_prob: phrases without concept words appended to the sentence (up
            to two, each with ``filler_prob``).
        rare_words / rare_prob: adverbs used rarely and left out of the word-vector file, so
            that the out-of-vocabulary path runs.
        period: probability of a final period. capitalize: capitalize the first letter.
    """

    subjects: tuple[str, ...]
    tenses: tuple[tuple[str, float], ...]
    articles: tuple[tuple[str, float], ...] = (("the", 0.85), ("a", 0.15))
    adverbs: tuple[str, ...] = ("quickly", "slowly")
    adverb_prob: float = 0.1
    fillers: tuple[str, ...] = ()
    filler_prob: float = 0.0
    rare_words: tuple[str, ...] = ()
    rare_prob: float = 0.02
    period: float = 1.0
    capitalize: bool = False


CHARADES_STYLE = Style(
    subjects=("person", "a person", "the person", "someone"),
    tenses=(("present", 0.65), ("progressive", 0.35)),
    fillers=("in the room", "at home"), filler_prob=0.08,
    rare_words=("hastily", "absentmindedly"), period=0.95)

ACTIVITYNET_STYLE = Style(
    subjects=("a man", "a woman", "a young man", "a little girl", "a boy", "the man",
              "the woman", "a person"),
    tenses=(("present", 0.4), ("progressive", 0.3), ("seen", 0.3)),
    adverbs=("quickly", "slowly", "happily", "carefully"), adverb_prob=0.2,
    fillers=("in front of the camera", "while people watch", "outside on a sunny day",
             "in a large room", "while smiling", "several times", "for a while",
             "while talking to the camera"), filler_prob=0.75,
    rare_words=("nonchalantly", "vigorously"), period=0.97, capitalize=True)

TACOS_STYLE = Style(
    subjects=("she", "she", "he", "the person", "the woman", "the man"),
    tenses=(("past", 0.85), ("present", 0.15)),
    articles=(("the", 0.6), ("", 0.3), ("a", 0.1)),
    adverbs=("carefully", "quickly"), adverb_prob=0.1,
    fillers=("in the sink", "on the counter", "at the counter", "by hand"),
    filler_prob=0.2, rare_words=("meticulously", "deftly"), period=0.3, capitalize=True)

STYLES = {"charades": CHARADES_STYLE, "activitynet": ACTIVITYNET_STYLE, "tacos": TACOS_STYLE}


@dataclass(frozen=True)
class QuerySpec:
    """What a sentence says: its kind and the ``(action, object)`` indices it mentions.

    ``mentions`` is one pair for ``single`` and ``ordinal``, ``(first, second)`` for
    ``sequence`` and ``(context, target)`` for ``context``. ``ordinal`` is 1 or 2.
    """

    kind: Kind
    mentions: tuple[tuple[int, int], ...]
    ordinal: int = 0


class Renderer:
    """Turns a :class:`QuerySpec` into a sentence in a :class:`Style`."""

    def __init__(self, domain: Domain, style: Style):
        self.domain, self.style = domain, style
        self._tense_p = _weights(style.tenses)
        self._article_p = _weights(style.articles)

    def render(self, spec: QuerySpec, rng: np.random.Generator) -> str:
        st = self.style
        tense = st.tenses[rng.choice(len(st.tenses), p=self._tense_p)][0]
        subject = st.subjects[rng.integers(len(st.subjects))]
        adverb = None
        if rng.random() < st.rare_prob and st.rare_words:
            adverb = st.rare_words[rng.integers(len(st.rare_words))]
        elif rng.random() < st.adverb_prob:
            adverb = st.adverbs[rng.integers(len(st.adverbs))]
        verbs = [self._verb(a, rng) for a, _ in spec.mentions]
        objs = [self._object(o, rng) for _, o in spec.mentions]
        if spec.kind == "ordinal":
            key = "second" if spec.ordinal == 2 else "first"
        else:
            key = spec.kind
        template = TEMPLATES[key][rng.integers(len(TEMPLATES[key]))]
        fill = {"S": subject, "s": subject, "O": objs[0], "O1": objs[0], "O2": objs[-1],
                "V": _finite(verbs[0], tense, adverb), "V2": _finite(verbs[-1], tense, adverb),
                "C2": _continuation(verbs[-1], tense), "G1": verbs[0][2]}
        text = template.format(**fill)
        for _ in range(2):
            if st.fillers and rng.random() < st.filler_prob:
                text += " " + st.fillers[rng.integers(len(st.fillers))]
        if st.capitalize:
            text = text[0].upper() + text[1:]
        if rng.random() < st.period:
            text += "."
        return text

    def _verb(self, action: int, rng) -> tuple[str, str, str, str]:
        verbs = self.domain.actions[action].verbs
        return verbs[rng.integers(len(verbs))]

    def _object(self, obj: int, rng) -> str:
        nouns = self.domain.objects[obj].nouns
        noun = nouns[rng.integers(len(nouns))]
        article = self.style.articles[rng.choice(len(self.style.articles), p=self._article_p)][0]
        if article == "a" and (noun in _UNCOUNTABLE or noun.endswith("s")):
            article = "the"
        if article == "a" and noun[0] in "aeiou":
            article = "an"
        return f"{article} {noun}" if article else noun


def _weights(pairs) -> np.ndarray:
    w = np.array([p for _, p in pairs], dtype=np.float64)
    return w / w.sum()


def _finite(verb: tuple[str, str, str, str], tense: str, adverb: str | None) -> str:
    _, third, gerund, past = verb
    pre = f"{adverb} " if adverb else ""
    if tense == "present":
        return pre + third
    if tense == "past":
        return pre + past
    if tense == "progressive":
        return f"is {pre}{gerund}"
    if tense == "seen":
        return f"is seen {pre}{gerund}"
    raise ValueError(f"unknown tense {tense!r}")


def _continuation(verb: tuple[str, str, str, str], tense: str) -> str:
    """The second verb of "X and then Y": agrees with the first verb's tense."""
    _, third, gerund, past = verb
    return {"present": third, "past": past}.get(tense, gerund)


def template_words(style: Style) -> list[str]:
    """Every literal word the templates and the style can write (placeholders removed)."""
    texts = [re.sub(r"\{\w+\}", " ", t) for group in TEMPLATES.values() for t in group]
    texts += list(style.subjects) + list(style.adverbs) + list(style.fillers)
    texts += [a for a, _ in style.articles] + ["an", "is", "seen"]
    return [w for t in texts for w in re.findall(r"[a-z]+", t.lower())]
