"""Videos (events with gaps, hard negatives) and the targets a query can uniquely describe.

A video is a sequence of 3 to 8 events (per preset) of valid (action, object) types. Each new
event repeats an earlier type with ``repeat_prob`` (ordinal and context queries need a type
that occurs twice), else shares the action or the object of an earlier event with
``hard_prob`` ("opens the door" next to "opens the laptop" and "closes the door"), else is a
new random type. A type occurs at most twice.

:func:`enumerate_targets` lists every target that a sentence of each kind describes
unambiguously in the video (see :mod:`momentloc.synth.language` for the kinds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from momentloc.synth.language import Kind
from momentloc.synth.presets import QueryMix, Timing
from momentloc.synth.world import EventTiming, World


@dataclass(frozen=True)
class Target:
    """A moment a query can describe uniquely.

    Attributes:
        kind: query kind.
        mentions: indices of the events the sentence names: ``(i,)`` for single and ordinal,
            ``(i, i+1)`` for sequence, ``(context, target)`` for context.
        first, last: the target spans events ``first..last`` (inclusive).
        ordinal: 1 or 2 for ordinal targets, else 0.
    """

    kind: Kind
    mentions: tuple[int, ...]
    first: int
    last: int
    ordinal: int = 0


def related_types(world: World) -> np.ndarray:
    """``(E, E)`` bool: types sharing the action or the object (a type is not its own)."""
    a, o = world.event_types[:, 0], world.event_types[:, 1]
    rel = (a[:, None] == a[None, :]) | (o[:, None] == o[None, :])
    np.fill_diagonal(rel, False)
    return rel


def sample_event_types(world: World, related: np.ndarray, num_events: int, mix: QueryMix,
                       rng: np.random.Generator) -> list[int]:
    """Event types of one video in time order (a loop over at most 8 events)."""
    counts = np.zeros(world.num_event_types, dtype=np.int64)
    types: list[int] = []
    for k in range(num_events):
        r = rng.random()
        choice = None
        if types and r < mix.repeat_prob:
            # repeat a type seen once, not the immediately preceding one
            once = [t for t in dict.fromkeys(types) if counts[t] == 1 and t != types[-1]]
            if once:
                choice = once[rng.integers(len(once))]
        elif types and r < mix.repeat_prob + mix.hard_prob:
            near = np.flatnonzero(related[types].any(axis=0) & (counts == 0))
            if len(near):
                choice = int(near[rng.integers(len(near))])
        if choice is None:
            fresh = np.flatnonzero(counts == 0)
            choice = int(fresh[rng.integers(len(fresh))])
        counts[choice] += 1
        types.append(choice)
    return types


def sample_timing(num_events: int, timing: Timing, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(starts (n,), ends (n,), duration)`` in seconds, rounded to 0.01 s."""
    tempo = np.exp(rng.normal(0.0, timing.tempo_sigma))
    lengths = tempo * timing.event_median_s * np.exp(rng.normal(0.0, timing.event_sigma, num_events))
    gaps = tempo * rng.exponential(timing.gap_mean_s, num_events + 1)
    total = lengths.sum() + gaps.sum()
    lo, hi = timing.duration_range
    scale = np.clip(total, lo, hi) / total
    lengths, gaps = lengths * scale, gaps * scale
    starts = gaps[0] + np.concatenate([[0.0], np.cumsum(lengths + gaps[1:])[:-1]])
    ends = starts + lengths
    duration = float(np.round(ends[-1] + gaps[-1], 2))
    return np.round(starts, 2), np.minimum(np.round(ends, 2), duration), duration


def enumerate_targets(types: list[int]) -> list[Target]:
    """Every target a sentence describes unambiguously (in kind order, then time).

    - single: the type occurs once.
    - sequence: consecutive events ``(i, i+1)`` of different types, and no other pair
      ``j < k`` has the same two types (so "A and then B" has one reading).
    - ordinal: the type occurs exactly twice; one target per occurrence.
    - context: event ``j`` of a type that occurs twice, its predecessor ``i = j-1`` of
      another type that occurs once, and the other occurrence of ``j``'s type comes before
      ``i`` (so "after i, j" picks ``j`` and only ``j``).
    """
    n = len(types)
    t = np.array(types)
    count = {x: int((t == x).sum()) for x in set(types)}
    out = [Target("single", (i,), i, i) for i in range(n) if count[types[i]] == 1]
    for i in range(n - 1):
        a, b = types[i], types[i + 1]
        if a == b:
            continue
        pairs = sum(1 for j in range(n) for k in range(j + 1, n) if types[j] == a and types[k] == b)
        if pairs == 1:
            out.append(Target("sequence", (i, i + 1), i, i + 1))
    for x, c in count.items():
        if c == 2:
            i, j = np.flatnonzero(t == x)
            out += [Target("ordinal", (int(i),), int(i), int(i), 1),
                    Target("ordinal", (int(j),), int(j), int(j), 2)]
    for j in range(1, n):
        i = j - 1
        if count[types[j]] == 2 and count[types[i]] == 1 and types[i] != types[j]:
            other = next(k for k in range(n) if types[k] == types[j] and k != j)
            if other < i:
                out.append(Target("context", (i, j), j, j))
    order = {"single": 0, "sequence": 1, "ordinal": 2, "context": 3}
    return sorted(out, key=lambda g: (order[g.kind], g.first, g.ordinal))


def choose_targets(targets: list[Target], mix: QueryMix, rng: np.random.Generator) -> list[Target]:
    """Sample distinct targets; each kind gets its mix weight, shared among its targets."""
    if not targets:
        return []
    kinds = [g.kind for g in targets]
    per_kind = {k: kinds.count(k) for k in set(kinds)}
    w = np.array([mix.weights.get(k, 0.0) / per_kind[k] for k in kinds])
    if w.sum() <= 0:
        return []
    want = int(rng.integers(mix.targets[0], mix.targets[1] + 1))
    k = min(want, int((w > 0).sum()))
    picked = rng.choice(len(targets), size=k, replace=False, p=w / w.sum())
    return [targets[i] for i in sorted(picked)]


def event_timings(types: list[int], starts: np.ndarray, ends: np.ndarray) -> list[EventTiming]:
    return [EventTiming(int(t), float(s), float(e)) for t, s, e in zip(types, starts, ends)]
