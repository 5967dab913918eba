"""Summary statistics of a list of records (annotations only; no features needed)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from momentloc.data.records import MomentRecord
from momentloc.data.text import tokenize


def dataset_stats(records: Sequence[MomentRecord]) -> dict:
    """Statistics of one split, as printed by ``momentloc stats``.

    Returns:
        A dict with ``queries``, ``videos``, ``queries_per_video``, ``mean_video_duration``,
        ``min_video_duration``, ``max_video_duration`` (over videos, seconds),
        ``mean_moment_length`` (seconds), ``mean_moment_ratio`` (moment length / video
        duration), ``mean_words_per_query`` (tokens of :func:`momentloc.data.text.tokenize`),
        ``queries_with_annotators`` (queries holding several annotator moments) and
        ``mean_annotators_per_query`` (over those). Means are ``None`` for an empty list.
    """
    n = len(records)
    spans = np.array([r.span for r in records], dtype=np.float64).reshape(n, 2)
    durations = np.array([r.duration for r in records], dtype=np.float64)
    # Words as the models see them (punctuation dropped, clitics split).
    words = np.array([len(tokenize(r.query)) for r in records], dtype=np.float64)
    annotators = np.array([len(r.annotator_spans) for r in records], dtype=np.int64)
    # Each video counted once, at its first record.
    _, first = np.unique(np.array([r.video_id for r in records], dtype=str), return_index=True)
    video_durations = durations[first]
    lengths = spans[:, 1] - spans[:, 0]
    several = annotators > 1

    def mean(x):
        return float(x.mean()) if x.size else None

    return {
        "queries": n,
        "videos": int(first.size),
        "queries_per_video": n / first.size if first.size else None,
        "mean_video_duration": mean(video_durations),
        "min_video_duration": float(video_durations.min()) if n else None,
        "max_video_duration": float(video_durations.max()) if n else None,
        "mean_moment_length": mean(lengths),
        "mean_moment_ratio": mean(lengths / durations),
        "mean_words_per_query": mean(words),
        "queries_with_annotators": int(several.sum()),
        "mean_annotators_per_query": mean(annotators[several].astype(np.float64)),
    }
