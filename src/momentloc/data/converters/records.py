"""momentloc's own JSONL of normalized records (``momentloc.data.records.write_records``).

The same checks as for every other format apply, so a hand-edited or foreign file gets the
same span rules and error messages; the ``split`` field is set to the split read.
"""

from __future__ import annotations

import os

from momentloc.data.converters.common import (
    Where, check_duration, check_repeats, clean_query, fix_span, get_field, parse_json, read_jsonl)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord


def read_records_split(jsonl_path: str | os.PathLike, split: str = "",
                       policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read a records JSONL file, validating each line like the benchmark readers do."""
    return read_jsonl(jsonl_path, split, policy or InputPolicy(), _line)


def _pairs(value, where: Where) -> list:
    if not isinstance(value, list) or any(not isinstance(p, list) or len(p) != 2 for p in value):
        raise where.error(f"expected a list of [start, end] pairs, got {str(value)[:80]}")
    return value


def _line(path: str, lineno: int, line: str, split: str,
          policy: InputPolicy) -> MomentRecord | None:
    where = Where(path, lineno)
    obj = parse_json(line, path, lineno)
    check_repeats(obj, where, policy)
    vid = get_field(obj, "video_id", where)
    if not isinstance(vid, str) or not vid:
        raise where.error(f"video_id is not a non-empty string: {vid!r}")
    where = Where(path, lineno, video_id=vid)
    qid = get_field(obj, "query_id", where)
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or qid == "":
        raise where.error(f"query_id is not a non-empty string: {qid!r}")
    duration = check_duration(get_field(obj, "duration", where), where)
    query = clean_query(get_field(obj, "query", where), where, policy)
    (start, end), = _pairs([get_field(obj, "span", where)], where)
    span = fix_span(start, end, duration, where, policy)
    if span is None:
        return None
    annotators = []
    for s, e in _pairs(obj.get("annotator_spans", []), where):
        a = fix_span(s, e, duration, where, policy)
        if a is not None:
            annotators.append(a)
    return MomentRecord(str(qid), vid, duration, query, span, tuple(annotators), split)
