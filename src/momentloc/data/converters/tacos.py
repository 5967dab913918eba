"""TACoS, in either of its two public layouts (told apart by the JSON's top level).

- 2D-TAN (an object): ``{"s17-d69.avi": {"timestamps": [[224, 358], ...], "sentences": [...],
  "fps": 29.4, "num_frames": 12438}}``; timestamps are frame numbers, so seconds = frame / fps
  and duration = num_frames / fps.
- TALL/CMIN/CSMGAN (a list): ``[[video, duration_s, [start_s, end_s], sentence, ...], ...]``,
  in seconds; items past the fourth (tokens, graphs of the CSMGAN release) are ignored.

Video ids keep their ``.avi`` suffix, as in both files and in the TALL C3D feature file.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from momentloc.data.converters.activitynet import read_video_moments
from momentloc.data.converters.common import (
    Where, check_duration, check_repeats, clean_query, finish, fix_span, get_field, group_by_video,
    query_id, read_json, to_float, video_entries)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import DataError


def read_tacos(json_path: str | os.PathLike, split: str = "",
               policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read a TACoS split in the 2D-TAN (frames) or the TALL/CMIN list (seconds) layout.

    Query ids: ``"<split>:<video>:<k>"`` (k-th sentence of the video) for the 2D-TAN layout,
    ``"<split>:<i>"`` (i-th item) for the list layout.
    """
    policy = policy or InputPolicy()
    path = str(json_path)
    data = read_json(json_path)
    if isinstance(data, dict):
        out = []
        for vid, entry in video_entries(data, path, policy):
            where = Where(path, video_id=vid)
            try:
                check_repeats(entry, where, policy)
                fps = to_float(get_field(entry, "fps", where), "fps", where)
                if fps <= 0:
                    raise where.error(f"fps must be > 0, got {fps}")
            except DataError as e:
                policy.bad(e)
                continue
            out += read_video_moments(path, vid, entry, split, policy, scale=1.0 / fps,
                                      duration_key="num_frames")
    elif isinstance(data, list):
        out = [r for i, item in enumerate(data) if (r := _list_item(path, i, item, split, policy))]
    else:
        raise DataError("expected a JSON object (2D-TAN layout) or a list (TALL/CMIN layout)",
                        path=path)
    return finish(out, path, policy)


def _list_item(path: str, i: int, item, split: str, policy: InputPolicy) -> MomentRecord | None:
    where = Where(path, record=f"item {i}")
    try:
        check_repeats(item, where, policy)
        if not isinstance(item, list) or len(item) < 4:
            raise where.error("expected [video, duration, [start, end], sentence, ...], got "
                              f"{str(item)[:80]}")
        vid, duration, stamp, sentence = item[:4]
        where = Where(path, record=f"item {i}", video_id=str(vid))
        duration = check_duration(duration, where)
        if not isinstance(stamp, list) or len(stamp) != 2:
            raise where.error(f"expected a [start, end] pair, got {stamp!r}")
        query = clean_query(sentence, where, policy)
        span = fix_span(stamp[0], stamp[1], duration, where, policy)
    except DataError as e:
        policy.bad(e)
        return None
    if span is None:
        return None
    return MomentRecord(query_id(split, i), str(vid), duration, query, span, (), split)


def write_tacos(records: Iterable[MomentRecord], json_path: str | os.PathLike, fps: float) -> None:
    """Write records in the 2D-TAN TACoS layout: frame numbers ``round(seconds * fps)`` and
    ``num_frames = round(duration * fps)``, so times come back within ``0.5 / fps`` seconds.
    Query ids and ``annotator_spans`` are not representable."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    groups = group_by_video(records, json_path)
    data = {vid: {"timestamps": [[round(r.span[0] * fps), round(r.span[1] * fps)] for r in g],
                  "sentences": [r.query for r in g],
                  "fps": fps,
                  "num_frames": round(g[0].duration * fps)} for vid, g in groups.items()}
    atomic_write_text(json_path, json.dumps(data) + "\n")
