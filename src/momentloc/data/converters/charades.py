"""Charades-STA: ``<vid> <start_s> <end_s>##<sentence>`` per line, durations in a separate file.

Durations come from ``Charades_v1_{train,test}.csv`` (column ``length``) or ``charades.json``;
see :func:`momentloc.data.converters.common.read_durations`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable

from momentloc.data.converters.common import (
    Where, clean_query, finish, fix_span, format_number, group_by_video, query_id,
    read_durations, read_lines, video_duration)
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import DataError

SEPARATOR = "##"


def read_charades_sta(txt_path: str | os.PathLike, durations_path: str | os.PathLike,
                      split: str = "", policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read a Charades-STA split.

    Args:
        txt_path: ``charades_sta_<split>.txt``.
        durations_path: ``Charades_v1_<split>.csv`` or ``charades.json``.
        split: split name stored in the records and in query ids (``"<split>:<line>"``,
            1-based line numbers, so an id points at its line).
        policy: bad-input policy (default: raise).
    """
    policy = policy or InputPolicy()
    lines = read_lines(txt_path)  # first, so a missing annotation file is named before the csv
    durations = read_durations(durations_path, policy)
    path = str(txt_path)
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = Where(path, lineno)
        try:
            head, sep, sentence = line.partition(SEPARATOR)
            fields = head.split()
            if not sep or len(fields) != 3:
                raise where.error(f"expected '<video> <start> <end>{SEPARATOR}<sentence>', got "
                                  f"{line[:80]!r}")
            vid, start, end = fields
            where = Where(path, lineno, video_id=vid)
            duration = video_duration(durations, vid, durations_path, where)
            query = clean_query(sentence, where, policy)
            span = fix_span(start, end, duration, where, policy)
        except DataError as e:
            policy.bad(e)
            continue
        if span is not None:
            out.append(MomentRecord(query_id(split, lineno), vid, duration, query, span, (), split))
    return finish(out, path, policy)


def write_charades_sta(records: Iterable[MomentRecord], txt_path: str | os.PathLike,
                       durations_csv_path: str | os.PathLike) -> None:
    """Write records as a Charades-STA txt plus a durations file.

    The durations file is a CSV with columns ``id,length`` (what the reader needs of
    ``Charades_v1_*.csv``), or ``{video: {"duration": d}}`` JSON when the path ends in
    ``.json``. Times are written exactly (shortest float text). ``annotator_spans`` are not
    representable and are dropped.

    Raises:
        DataError: a video id containing whitespace, or one video with two durations.
    """
    records = list(records)
    groups = group_by_video(records, txt_path)
    lines = []
    for r in records:
        if not r.video_id or SEPARATOR in r.video_id or any(c.isspace() for c in r.video_id):
            raise DataError(f"video id is empty or contains whitespace or {SEPARATOR!r}",
                            path=str(txt_path), video_id=r.video_id)
        query = " ".join(r.query.split())  # a newline would end the line
        lines.append(f"{r.video_id} {format_number(r.span[0])} {format_number(r.span[1])}"
                     f"{SEPARATOR}{query}\n")
    durations = {vid: g[0].duration for vid, g in groups.items()}
    if Path(durations_csv_path).suffix.lower() == ".json":
        text = json.dumps({vid: {"duration": d} for vid, d in durations.items()}) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["id", "length"])
        writer.writerows([vid, format_number(d)] for vid, d in durations.items())
        text = buf.getvalue()
    atomic_write_text(durations_csv_path, text)
    atomic_write_text(txt_path, "".join(lines))
