"""DiDeMo: a JSON list of ``{"num_segments", "description", "times": [[i, j], ...], "video",
"annotation_id", ...}``; ``times`` holds one moment per annotator as inclusive 5-second segment
indices (``[3, 3]`` = 15-20 s).

Duration: ``5 * num_segments`` (the usual convention; videos are at most 30 s and their last
segment is partial), or the exact length when the card's split names a ``durations`` file
(as for Charades-STA); the last segment then ends at the video's end.

The trained ``span`` is the most frequent annotator moment (ties: the one listed first); every
annotator's moment is kept, in file order, in ``annotator_spans`` for the annotator-aware
protocol.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from typing import Iterable

from momentloc.data.converters.common import (
    Where, check_repeats, clean_query, finish, fix_span, get_field, integer_id, read_durations,
    read_json, video_duration)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import DataError

SEGMENT_S = 5.0


def read_didemo(json_path: str | os.PathLike, split: str = "", policy: InputPolicy | None = None,
                durations_path: str | os.PathLike | None = None) -> list[MomentRecord]:
    """Read a DiDeMo split (``{train,val,test}_data.json``).

    Query ids are the file's ``annotation_id`` (``"<split>:<i>"`` for an item without one).
    """
    policy = policy or InputPolicy()
    path = str(json_path)
    data = read_json(json_path)
    durations = (read_durations(durations_path, policy) if durations_path is not None
                 else None)
    if not isinstance(data, list):
        raise DataError("expected a JSON list of annotations", path=path)
    out = []
    for i, item in enumerate(data):
        try:
            rec = _item(path, i, item, split, policy, durations)
        except DataError as e:
            policy.bad(e)
            continue
        if rec is not None:
            out.append(rec)
    return finish(out, path, policy)


def _index(value, where: Where, what: str = "segment index") -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or
                                       (isinstance(value, float) and value.is_integer())):
        raise where.error(f"{what} is not an integer: {value!r}")
    return int(value)


def _item(path, i, item, split, policy, durations) -> MomentRecord | None:
    aid = item.get("annotation_id") if isinstance(item, dict) else None
    label = f"record {i}" + (f" (annotation_id {aid})" if aid is not None else "")
    where = Where(path, record=label)
    check_repeats(item, where, policy)
    vid = get_field(item, "video", where)
    if not isinstance(vid, str) or not vid:
        raise where.error(f"video is not a non-empty string: {vid!r}")
    where = Where(path, record=label, video_id=vid)
    n = _index(get_field(item, "num_segments", where), where, "num_segments")
    if n < 1:
        raise where.error(f"num_segments must be >= 1, got {n}")
    duration = (n * SEGMENT_S if durations is None
                else video_duration(durations, vid, "the durations file", where))
    query = clean_query(get_field(item, "description", where), where, policy)
    times = get_field(item, "times", where)
    if not isinstance(times, list) or not times:
        raise where.error(f"times must be a non-empty list of [start, end] segment pairs, "
                          f"got {times!r}")
    spans = []
    for pair in times:
        if not isinstance(pair, list) or len(pair) != 2:
            raise where.error(f"expected a [start, end] segment pair, got {pair!r}")
        a, b = _index(pair[0], where), _index(pair[1], where)
        for k in (a, b):
            if not 0 <= k < n:
                raise where.error(f"segment index {k} outside 0..{n - 1} (num_segments {n})")
        # Inclusive indices -> seconds; the last segment is cut at the video's end.
        span = fix_span(a * SEGMENT_S, min((b + 1) * SEGMENT_S, duration), duration, where, policy)
        if span is not None:
            spans.append(span)
    if not spans:
        return None
    counts = Counter(spans)
    best = max(counts.values())
    span = next(s for s in spans if counts[s] == best)  # ties: first listed
    qid = str(aid) if aid is not None else (f"{split}:{i}" if split else str(i))
    return MomentRecord(qid, vid, duration, query, span, tuple(spans) if len(spans) > 1 else (),
                        split)


def write_didemo(records: Iterable[MomentRecord], json_path: str | os.PathLike) -> None:
    """Write records as DiDeMo JSON.

    Every annotator moment (``annotator_spans``, else ``span``) becomes inclusive segment
    indices: ``[floor(s / 5), ceil(e / 5) - 1]``; ``num_segments = ceil(duration / 5)``. Exact
    for records read from DiDeMo; other times snap to 5-s segments and the duration to a
    multiple of 5 s (write a durations file to keep it). Query ids become ``annotation_id``
    when all are distinct integers; otherwise each record's position does.
    """
    eps = 1e-6  # times at a boundary (15.0) must not round into the next segment
    records = list(records)
    ids = [r.query_id for r in records]
    use_ids = all(integer_id(q) is not None for q in ids) and len(set(ids)) == len(ids)
    items = []
    for i, r in enumerate(records):
        n = max(1, math.ceil(r.duration / SEGMENT_S - eps))
        times = []
        for s, e in (r.annotator_spans or (r.span,)):
            a = min(n - 1, max(0, math.floor(s / SEGMENT_S + eps)))
            b = min(n - 1, max(a, math.ceil(e / SEGMENT_S - eps) - 1))
            times.append([a, b])
        aid = int(r.query_id) if use_ids else i
        items.append({"num_segments": n, "description": r.query, "times": times,
                      "video": r.video_id, "annotation_id": aid})
    atomic_write_text(json_path, json.dumps(items) + "\n")
