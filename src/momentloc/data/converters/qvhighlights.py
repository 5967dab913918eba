"""QVHighlights-style JSONL: ``{"qid", "query", "duration", "vid", "relevant_windows": [[s, e],
...], ...}`` per line, in seconds. Other fields (saliency scores, clip ids) are ignored.

Several windows are all relevant to the query (not annotators' alternatives), but a
grounding model trains on one: ``span`` is the first window, as listed, and every window is
kept in ``annotator_spans`` (in file order) for evaluation against any of them.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from momentloc.data.converters.common import (
    Where, check_duration, check_repeats, clean_query, fix_span, get_field, integer_id, parse_json,
    read_jsonl)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text


def read_qvhighlights(jsonl_path: str | os.PathLike, split: str = "",
                      policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read a QVHighlights-style JSONL split. Query ids are the file's ``qid``."""
    return read_jsonl(jsonl_path, split, policy or InputPolicy(), _line)


def _line(path: str, lineno: int, line: str, split: str,
          policy: InputPolicy) -> MomentRecord | None:
    where = Where(path, lineno)
    obj = parse_json(line, path, lineno)
    check_repeats(obj, where, policy)
    vid = get_field(obj, "vid", where)
    if not isinstance(vid, str) or not vid:
        raise where.error(f"vid is not a non-empty string: {vid!r}")
    where = Where(path, lineno, video_id=vid)
    qid = get_field(obj, "qid", where)
    if isinstance(qid, bool) or not isinstance(qid, (int, str)):
        raise where.error(f"qid is not an integer or string: {qid!r}")
    duration = check_duration(get_field(obj, "duration", where), where)
    query = clean_query(get_field(obj, "query", where), where, policy)
    windows = get_field(obj, "relevant_windows", where)
    if not isinstance(windows, list) or not windows:
        raise where.error(f"relevant_windows must be a non-empty list, got {windows!r}")
    spans = []
    for w in windows:
        if not isinstance(w, list) or len(w) != 2:
            raise where.error(f"expected a [start, end] window, got {w!r}")
        span = fix_span(w[0], w[1], duration, where, policy)
        if span is not None:
            spans.append(span)
    if not spans:
        return None
    return MomentRecord(str(qid), vid, duration, query, spans[0],
                        tuple(spans) if len(spans) > 1 else (), split)


def write_qvhighlights(records: Iterable[MomentRecord], jsonl_path: str | os.PathLike) -> None:
    """Write records as QVHighlights-style JSONL (seconds, exact).

    ``relevant_windows`` are the ``annotator_spans`` (else ``[span]``), with ``span`` moved to
    the front so that it reads back as the trained span. Integer query ids are written as
    integers ``qid``.
    """
    lines = []
    for r in records:
        windows = [list(s) for s in (r.annotator_spans or (r.span,))]
        if windows[0] != list(r.span):
            if list(r.span) in windows:
                windows.remove(list(r.span))
            windows.insert(0, list(r.span))
        qid = integer_id(r.query_id)
        qid = r.query_id if qid is None else qid
        lines.append(json.dumps({"qid": qid, "query": r.query, "duration": r.duration,
                                 "vid": r.video_id, "relevant_windows": windows}) + "\n")
    atomic_write_text(jsonl_path, "".join(lines))
