"""Queries: four kinds, each describing a unique target inside its video; the moment prior is
weak and a simple matcher beats it (the benchmark is learnable, not solvable by position)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.data.features import open_store
from momentloc.data.text import load_glove, tokenize
from momentloc.metrics.baselines import PriorBaseline
from momentloc.spans import temporal_iou
from momentloc.synth import PRESETS
from momentloc.synth.probe import BagOfWordsProbe


def _videos(card_path):
    return [json.loads(line) for line in (card_path.parent / "events.jsonl").read_text().splitlines()]


def _describes_uniquely(video: dict, q: dict) -> bool:
    """Recheck, from the events alone, that the query's target is the only reading."""
    types = [(e["action"], e["object"]) for e in video["events"]]
    m = q["mentions"]
    if q["kind"] == "single":
        return types.count(types[m[0]]) == 1
    if q["kind"] == "ordinal":
        where = [i for i, t in enumerate(types) if t == types[m[0]]]
        return len(where) == 2 and where[q["ordinal"] - 1] == m[0]
    if q["kind"] == "sequence":
        a, b = types[m[0]], types[m[1]]
        readings = [(i, j) for i in range(len(types)) for j in range(i + 1, len(types))
                    if types[i] == a and types[j] == b]
        return m[1] == m[0] + 1 and readings == [tuple(m)]
    if q["kind"] == "context":
        ctx, target = m
        same = [i for i, t in enumerate(types) if t == types[target]]
        first_after = min(i for i in same if i > ctx)
        return (types.count(types[ctx]) == 1 and ctx == target - 1 and first_after == target
                and min(same) < ctx)
    raise AssertionError(q["kind"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_targets_are_unique_and_inside_their_video(synth_card, preset):
    kinds = Counter()
    for video in _videos(synth_card(preset)):
        n = len(video["events"])
        assert PRESETS[preset].timing.num_events[0] <= n <= PRESETS[preset].timing.num_events[1]
        starts = [e["start"] for e in video["events"]]
        ends = [e["end"] for e in video["events"]]
        assert all(0 <= s < e <= video["duration"] for s, e in zip(starts, ends))
        assert all(e <= s for e, s in zip(ends, starts[1:])), "events overlap"
        for q in video["queries"]:
            kinds[q["kind"]] += 1
            assert _describes_uniquely(video, q), (video["video_id"], q)
            first, last = min(q["mentions"]), max(q["mentions"])
            if q["kind"] == "context":
                first = last
            assert q["span"] == [video["events"][first]["start"], video["events"][last]["end"]]
            assert 0 <= q["label"][0] < q["label"][1] <= video["duration"] + 1e-9
    assert set(kinds) == {"single", "sequence", "ordinal", "context"}, kinds
    assert kinds["single"] < 0.75 * sum(kinds.values())


def test_sentences_follow_the_kind(synth_card):
    """Ordinal and context sentences carry their cue words; sequences say 'then' or
    'afterwards'; paraphrases use synonyms (several verbs per action appear)."""
    videos = _videos(synth_card("charades"))
    queries = [q for v in videos for q in v["queries"]]
    for q in queries:
        words = set(tokenize(q["query"]))
        if q["kind"] == "sequence":
            assert words & {"then", "afterwards"}, q
        elif q["kind"] == "context":
            assert "after" in words, q
        elif q["kind"] == "ordinal":
            cue = {"second", "again"} if q["ordinal"] == 2 else {"first", "before"}
            assert words & cue, q
        else:
            assert not words & {"then", "afterwards", "after", "again", "second", "first",
                                "before"}, q
    style_subjects = {s.split()[-1] for s in PRESETS["charades"].style.subjects}
    assert all(set(tokenize(q["query"])) & style_subjects for q in queries)
    opens = {w for q in queries for w in tokenize(q["query"]) if w in {"grabs", "takes", "picks",
                                                                    "grabbing", "taking", "picking"}}
    assert len(opens) >= 3, opens


def _prior_r1(card) -> float:
    train = load_split(card, card.roles["train"])
    test = load_split(card, card.roles["test"])
    spans, _ = PriorBaseline(0.5, 1).fit(train).predict(test, 1)
    return float((temporal_iou(spans[:, 0], np.array([r.span for r in test])) >= 0.5).mean())


def test_prior_baseline_stays_low_on_charades_tiny(synth_card):
    assert _prior_r1(load_card(str(synth_card("charades")))) < 0.25


@pytest.mark.slow
def test_prior_baseline_stays_low_on_charades_small(synth_card):
    """Generates the small set (about 10 s)."""
    assert _prior_r1(load_card(str(synth_card("charades", "small")))) < 0.25


@pytest.fixture
def one_thread():
    """The probe's linear algebra runs in torch: one thread is fastest on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_bag_of_words_probe_clearly_beats_the_prior(synth_card, one_thread):
    """A non-deep matcher (per-word ridge detectors on clip features) learns the benchmark."""
    card = load_card(str(synth_card("charades")))
    train = load_split(card, card.roles["train"])
    test = load_split(card, card.roles["test"])
    store = open_store(card)
    words = {t for r in train for t in tokenize(r.query)}
    table = load_glove(card.path(card.word_vectors), words)
    vectors = {w: table.vectors[table.index[w]] for w in table.words}
    probe = BagOfWordsProbe(word_vectors=vectors).fit(train, store.get)
    iou = temporal_iou(probe.predict(test, store.get), np.array([r.span for r in test]))
    got, prior = float((iou >= 0.5).mean()), _prior_r1(card)
    assert got >= max(1.5 * prior, prior + 0.1), (got, prior)
