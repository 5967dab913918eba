"""ActivityNet Captions: ``{video: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}``.

Video ids keep their ``v_`` prefix (``v_QOlSCBRmfWY``); the card's ``features.key_template``
maps them to feature keys.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from momentloc.data.converters.common import (
    Where, check_duration, check_repeats, clean_query, finish, fix_span, get_field, group_by_video,
    query_id, read_json, to_float, video_entries)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import DataError


def _pair(value, where: Where):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise where.error(f"expected a [start, end] pair, got {value!r}")
    return value


def read_video_moments(path: str, vid: str, entry, split: str, policy: InputPolicy,
                       scale: float = 1.0, duration_key: str = "duration") -> list[MomentRecord]:
    """The records of one ``{"timestamps", "sentences", ...}`` entry (ActivityNet, TACoS).

    Args:
        scale: seconds per time unit of ``timestamps`` and of ``entry[duration_key]``
            (1 for seconds; ``1 / fps`` for TACoS frame numbers).
    """
    where = Where(path, video_id=vid)
    try:
        check_repeats(entry, where, policy)
        duration = check_duration(get_field(entry, duration_key, where), where) * scale
        stamps = get_field(entry, "timestamps", where)
        sentences = get_field(entry, "sentences", where)
        if not isinstance(stamps, list) or not isinstance(sentences, list):
            raise where.error("timestamps and sentences must be lists")
        if len(stamps) != len(sentences):
            raise where.error(f"{len(stamps)} timestamps but {len(sentences)} sentences")
    except DataError as e:
        policy.bad(e)
        return []
    out = []
    for k, (stamp, sentence) in enumerate(zip(stamps, sentences)):
        w = Where(path, record=f"sentence {k}", video_id=vid)
        try:
            start, end = _pair(stamp, w)
            # Times are converted to seconds before the span rules, so the tolerance is in seconds.
            start = to_float(start, "start time", w) * scale
            end = to_float(end, "end time", w) * scale
            query = clean_query(sentence, w, policy)
            span = fix_span(start, end, duration, w, policy)
        except DataError as e:
            policy.bad(e)
            continue
        if span is not None:
            out.append(MomentRecord(query_id(split, vid, k), vid, duration, query, span, (), split))
    return out


def read_activitynet(json_path: str | os.PathLike, split: str = "",
                     policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read an ActivityNet Captions split (``train.json``, ``val_1.json``, ``val_2.json``).

    Query ids are ``"<split>:<video>:<k>"`` with ``k`` the sentence's index in its video.
    """
    policy = policy or InputPolicy()
    path = str(json_path)
    data = read_json(json_path)
    if not isinstance(data, dict):
        raise DataError("expected a JSON object mapping video ids to annotations", path=path)
    out = []
    for vid, entry in video_entries(data, path, policy):
        out += read_video_moments(path, vid, entry, split, policy)
    return finish(out, path, policy)


def write_activitynet(records: Iterable[MomentRecord], json_path: str | os.PathLike) -> None:
    """Write records as ActivityNet Captions JSON (seconds, exact). Query ids and
    ``annotator_spans`` are not representable; sentence order within a video is kept."""
    groups = group_by_video(records, json_path)
    data = {vid: {"duration": g[0].duration,
                  "timestamps": [list(r.span) for r in g],
                  "sentences": [r.query for r in g]} for vid, g in groups.items()}
    atomic_write_text(json_path, json.dumps(data) + "\n")
