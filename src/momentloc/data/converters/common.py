"""What every annotation reader shares: opening files, numbers, the span rules, the query text.

The repair rules (docs/data.md, "Quirks") are applied the same way by every reader:

- start after end: swapped, if the swapped moment lies within the video (within the tolerance);
  otherwise the item is bad.
- a time outside ``[-tol, duration + tol]``: bad. Inside the tolerance: clipped to the video.
- zero-length moment (after clipping): dropped, like the 2D-TAN readers do, because no
  prediction can reach IoU > 0 with it.
- query whitespace: runs collapsed to one space, ends stripped; the text is otherwise kept
  (the final period too: tokenization drops punctuation later).
- an exact duplicate (same video, span and query): kept, since the published split sizes
  count them (TACoS test has 567 such lines).

Each repair is counted with ``InputPolicy.warn`` under one of the ``WARN_*`` kinds.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord
from momentloc.errors import DataError

# End (or start) times may overshoot the video by this much and are clipped; beyond, bad input.
# Charades ends overshoot `length` by up to 1.5 s (the Charades annotation tool rounds up), so
# the absolute part must cover that; the relative part covers long videos whose duration metadata
# was measured differently from the annotation player's.
TOLERANCE_S = 2.0
TOLERANCE_FRACTION = 0.05

WARN_WHITESPACE = "query whitespace normalized"
WARN_SWAPPED = "start after end (swapped)"
WARN_START_CLIPPED = "start before 0 (clipped)"
WARN_END_CLIPPED = "end past duration (clipped)"
WARN_ZERO_LENGTH = "zero-length moment (dropped)"
WARN_DUPLICATE = "duplicate query (kept)"


def tolerance(duration: float) -> float:
    """Seconds a time may lie outside ``[0, duration]`` and still be clipped."""
    return max(TOLERANCE_S, TOLERANCE_FRACTION * duration)


@dataclass(frozen=True)
class Where:
    """Where an item is, for error messages: file, line (text files), record label, video."""

    path: str
    line: int | None = None
    record: str | None = None
    video_id: str | None = None

    def error(self, message: str) -> DataError:
        msg = f"{self.record}: {message}" if self.record else message
        return DataError(msg, path=self.path, line=self.line, video_id=self.video_id)


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; DataError if it is not an existing file."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found" if not p.exists() else "not a file", path=str(p))
    return p


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; DataError naming the file and line when it is not valid JSON."""
    p = check_file(path)
    try:
        with open(p, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg}, column {e.colno})", path=str(p),
                        line=e.lineno) from e
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=str(p)) from e


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 text file (BOM and line ends removed).

    Splits on ``\n`` only (not ``str.splitlines``, which also breaks at characters such as
    U+2028 that may occur inside a sentence), so line numbers match a text editor's.
    """
    p = check_file(path)
    try:
        with open(p, encoding="utf-8-sig", newline="") as f:
            return [line.removesuffix("\r") for line in f.read().split("\n")]
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=str(p)) from e


def to_float(value: Any, what: str, where: Where) -> float:
    """A finite float from a number or a numeric string; DataError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise where.error(f"{what} is not a number: {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise where.error(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise where.error(f"{what} is not finite: {value!r}")
    return x


def check_duration(value: Any, where: Where) -> float:
    d = to_float(value, "duration", where)
    if d <= 0:
        raise where.error(f"duration must be > 0 seconds, got {d}")
    return d


def clean_query(text: Any, where: Where, policy: InputPolicy) -> str:
    """The query with whitespace normalized; DataError when missing or empty."""
    if not isinstance(text, str):
        raise where.error(f"query is not a string: {text!r}")
    q = " ".join(text.split())
    if not q:
        raise where.error("empty query")
    if q != text:
        policy.warn(WARN_WHITESPACE)
    return q


def fix_span(start: Any, end: Any, duration: float, where: Where,
             policy: InputPolicy) -> tuple[float, float] | None:
    """Apply the span rules (module docstring) to one moment.

    Returns:
        ``(start, end)`` seconds with ``0 <= start < end <= duration``, or None when the
        moment is zero-length and dropped.
    Raises:
        DataError: non-numeric or non-finite times, or times outside the video beyond the
            tolerance (also when reversed times cannot be repaired by swapping).
    """
    s = to_float(start, "start time", where)
    e = to_float(end, "end time", where)
    tol = tolerance(duration)

    def inside(a: float, b: float) -> bool:  # repairable by clipping, for a <= b
        return -tol <= a <= duration and b <= duration + tol

    if s > e:
        if not inside(e, s):
            raise where.error(f"end {e:g} s is before start {s:g} s and swapping them leaves the "
                              f"moment outside the video (duration {duration:g} s): cannot repair")
        s, e = e, s
        policy.warn(WARN_SWAPPED)
    if s > duration:
        raise where.error(f"moment [{s:g}, {e:g}] s starts after the video's end (duration "
                          f"{duration:g} s)")
    if not inside(s, e):
        raise where.error(f"moment [{s:g}, {e:g}] s lies outside the video (duration "
                          f"{duration:g} s) by more than the {tol:g} s tolerance")
    if s < 0:
        s = 0.0
        policy.warn(WARN_START_CLIPPED)
    if e > duration:
        e = duration
        policy.warn(WARN_END_CLIPPED)
    if e <= s:
        policy.warn(WARN_ZERO_LENGTH)
        return None
    return s, e


def get_field(obj: Any, key: str, where: Where) -> Any:
    if not isinstance(obj, dict):
        raise where.error(f"expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise where.error(f"missing field {key!r}")
    return obj[key]


def query_id(split: str, *parts: Any) -> str:
    """``"<split>:<part>:..."``, or without the split when it is empty."""
    return ":".join(str(p) for p in ((split, *parts) if split else parts))


def integer_id(qid: str) -> int | None:
    """``qid`` as an int when it is one written canonically (``"49152"``, not ``"007"``)."""
    return int(qid) if qid.isdigit() and str(int(qid)) == qid else None


def finish(records: list[MomentRecord], path: str, policy: InputPolicy) -> list[MomentRecord]:
    """Count exact duplicates (kept) and reject repeated query ids (bad: the later one)."""
    seen_ids: set[str] = set()
    seen: set[tuple] = set()
    out = []
    for r in records:
        if r.query_id in seen_ids:
            policy.bad(DataError(f"query id {r.query_id!r} appears twice", path=path,
                                 video_id=r.video_id))
            continue
        seen_ids.add(r.query_id)
        key = (r.video_id, r.span, r.query)
        if key in seen:
            policy.warn(WARN_DUPLICATE)
        seen.add(key)
        out.append(r)
    return out


# ---- video durations (Charades-STA; optional for DiDeMo) -------------------------------------

_ID_COLUMNS = ("id", "video_id", "vid", "video")
_DURATION_COLUMNS = ("length", "duration")


def read_jsonl(path: str | os.PathLike, split: str, policy: InputPolicy,
               parse: Callable[[str, int, str, str, InputPolicy], MomentRecord | None]
               ) -> list[MomentRecord]:
    """Records of a one-object-per-line JSON file: ``parse(path, lineno, line, split, policy)``
    turns each non-blank line into a record (or None to skip it); a DataError it raises goes
    to ``policy`` (error, skip or fix), and the result passes through :func:`finish`."""
    out = []
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            rec = parse(str(path), lineno, line, split, policy)
        except DataError as e:
            policy.bad(e)
            continue
        if rec is not None:
            out.append(rec)
    return finish(out, str(path), policy)


def read_durations(path: str | os.PathLike) -> dict[str, str]:
    """Video id -> duration as written (validated when a query uses it).

    Reads a CSV with a header (``Charades_v1_*.csv``: columns ``id`` and ``length``; fields may
    be quoted and span several lines) or a JSON mapping ``{video: seconds}`` or
    ``{video: {"duration": seconds, ...}}`` (``charades.json``).
    """
    p = check_file(path)
    if p.suffix.lower() == ".json":
        data = read_json(p)
        if not isinstance(data, dict):
            raise DataError("durations JSON must map video ids to durations", path=str(p))
        out = {}
        for vid, v in data.items():
            out[str(vid)] = v.get("duration") if isinstance(v, dict) else v
        return out
    try:
        with open(p, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            id_col = next((c for c in _ID_COLUMNS if c in header), None)
            dur_col = next((c for c in _DURATION_COLUMNS if c in header), None)
            if id_col is None or dur_col is None:
                raise DataError(f"durations CSV needs a video id column "
                                f"({'/'.join(_ID_COLUMNS)}) and a duration column "
                                f"({'/'.join(_DURATION_COLUMNS)}); header is {header}",
                                path=str(p), line=1)
            return {row[id_col].strip(): row[dur_col] for row in reader if row.get(id_col)}
    except csv.Error as e:
        raise DataError(f"not a valid CSV file ({e})", path=str(p)) from e
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=str(p)) from e


def format_number(x: float) -> str:
    """Shortest text that reads back as the same float (``24.3``, ``30.0``)."""
    return repr(float(x))


def group_by_video(records, path: str | os.PathLike) -> dict[str, list[MomentRecord]]:
    """Records per video in first-seen order; DataError when one video has two durations."""
    groups: dict[str, list[MomentRecord]] = {}
    for r in records:
        g = groups.setdefault(r.video_id, [])
        if g and g[0].duration != r.duration:
            raise DataError(f"records disagree on the duration ({g[0].duration} vs {r.duration})",
                            path=str(path), video_id=r.video_id)
        g.append(r)
    return groups
