"""What every annotation reader shares: opening files, numbers, the span rules, the query text.

The repair rules (docs/data.md, "Quirks") are applied the same way by every reader:

- start after end: swapped, if the swapped moment lies within the video (within the tolerance);
  otherwise dropped, as the published readers do (three lines of the published Charades-STA
  train file).
- a time outside ``[-tol, duration + tol]``: bad. Inside the tolerance: clipped to the video.
- zero-length moment (after clipping): dropped, like the 2D-TAN readers do, because no
  prediction can reach IoU > 0 with it.
- query whitespace: runs collapsed to one space, ends stripped; the text is otherwise kept
  (the final period too: tokenization drops punctuation later).
- an exact duplicate (same video, span and query): kept, since the published split sizes
  count them (TACoS test has 567 such lines).
- a key written twice in one JSON object, or a video twice in a durations file: merged when
  both values are equal; bad input when they differ (the video's queries are skipped).

Each repair is counted with ``InputPolicy.warn`` under one of the ``WARN_*`` kinds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
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
WARN_REVERSED_DROPPED = "start after end, outside the video (dropped)"
WARN_REPEAT_MERGED = "repeated key with the same value (merged)"


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


class JSONObject(dict):
    """A parsed JSON object in which some key was written more than once.

    ``repeats`` maps each such key to all its values in file order; the mapping itself holds
    the last one (what ``json.load`` keeps). Objects without repeats are plain dicts.
    """

    __slots__ = ("repeats",)


def _object(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    repeats: dict[str, list] = {}
    for key, value in pairs:
        if key in out:
            repeats.setdefault(key, [out[key]]).append(value)
        out[key] = value
    if not repeats:
        return out
    obj = JSONObject(out)
    obj.repeats = repeats
    return obj


def _long_number_line(text: str) -> int | None:
    m = re.search(r"\d{%d,}" % (sys.get_int_max_str_digits() + 1), text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def parse_json(text: str, path: str, line: int | None = None) -> Any:
    """Parse JSON text from ``path`` (starting at ``line`` for one line of a JSONL file).

    Repeated keys are kept track of (:class:`JSONObject`; see :func:`merge_repeats`).
    Raises:
        DataError: naming the file and line for invalid JSON, nesting too deep for the parser,
            or an integer too long to convert (Python's int-string limit).
    """
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        at = e.lineno if line is None else line
        raise DataError(f"not valid JSON ({e.msg}, column {e.colno})", path=path, line=at) from e
    except RecursionError:
        raise DataError("not readable JSON: arrays or objects nested too deeply", path=path,
                        line=line) from None
    except ValueError as e:  # int("1" * 5000): the interpreter's integer-string limit
        where = _long_number_line(text)
        at = line if line is not None else where
        raise DataError(f"not readable JSON: a number with more than "
                        f"{sys.get_int_max_str_digits()} digits ({e})", path=path, line=at) from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; DataError naming the file and line when it cannot be read as JSON."""
    p = check_file(path)
    try:
        with open(p, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=str(p)) from e
    return parse_json(text, str(p))


def merge_repeats(obj: Any, where: Where, policy: InputPolicy) -> list[str]:
    """Resolve the repeated keys of one parsed JSON object (not its members).

    A key repeated with equal values is merged (one copy kept) and counted as
    ``WARN_REPEAT_MERGED``. Returns the keys repeated with different values: the caller treats
    each as bad input (a video key: the video's queries are skipped).
    """
    if not isinstance(obj, JSONObject):
        return []
    conflicts = []
    for key, values in list(obj.repeats.items()):
        if all(v == values[0] for v in values[1:]):
            policy.warn(WARN_REPEAT_MERGED, len(values) - 1)
            del obj.repeats[key]  # resolved: a second look finds nothing to count again
        else:
            conflicts.append(key)
    return conflicts


def check_repeats(value: Any, where: Where, policy: InputPolicy) -> None:
    """:func:`merge_repeats` over ``value`` and everything nested in it; DataError naming the
    first key written twice with different values (one annotation entry: small)."""
    stack = [value]  # iterative: any depth the parser accepted is walked without recursion
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            conflicts = merge_repeats(v, where, policy)
            if conflicts:
                key = conflicts[0]
                raise where.error(f"key {key!r} is written {len(v.repeats[key])} times with "
                                  f"different values")
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def video_entries(data: dict, path: str, policy: InputPolicy) -> list[tuple[str, Any]]:
    """``(video, entry)`` pairs of a JSON object keyed by video (ActivityNet, 2D-TAN TACoS).

    A video written twice with equal entries is read once (counted as merged); with different
    entries it is bad input, and none of its entries is read.
    """
    bad = set()
    for vid in merge_repeats(data, Where(path), policy):
        n = len(data.repeats[vid])
        policy.bad(DataError(f"video key written {n} times with different annotations "
                             f"(json.load would silently keep only the last)", path=path,
                             video_id=vid))
        bad.add(vid)
    return [(str(vid), entry) for vid, entry in data.items() if vid not in bad]


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
        moment is dropped: zero-length, or reversed and not inside the video once swapped.
    Raises:
        DataError: non-numeric or non-finite times, or times outside the video beyond the
            tolerance.
    """
    s = to_float(start, "start time", where)
    e = to_float(end, "end time", where)
    tol = tolerance(duration)

    def inside(a: float, b: float) -> bool:  # repairable by clipping, for a <= b
        return -tol <= a <= duration and b <= duration + tol

    if s > e:
        if not inside(e, s):
            # Charades-STA train: 'LEOL6 8.0 7.0' in a 6.25 s video. The published readers
            # drop these (2D-TAN clips the end to the duration and keeps start < end).
            policy.warn(WARN_REVERSED_DROPPED)
            return None
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


@dataclass(frozen=True)
class ConflictingDuration:
    """A video listed more than once in a durations file with different lengths."""

    values: tuple[Any, ...]


def read_durations(path: str | os.PathLike, policy: InputPolicy | None = None
                   ) -> dict[str, Any]:
    """Video id -> duration as written (validated by :func:`video_duration` when a query uses it).

    Reads a CSV with a header (``Charades_v1_*.csv``: columns ``id`` and ``length``; fields may
    be quoted and span several lines) or a JSON mapping ``{video: seconds}`` or
    ``{video: {"duration": seconds, ...}}`` (``charades.json``). A video listed twice with the
    same duration is merged (counted in ``policy``); with different durations its entry is a
    :class:`ConflictingDuration`, which makes every query of the video bad input.
    """
    policy = policy or InputPolicy()
    p = check_file(path)
    rows: list[tuple[str, Any]]
    if p.suffix.lower() == ".json":
        data = read_json(p)
        if not isinstance(data, dict):
            raise DataError("durations JSON must map video ids to durations", path=str(p))
        rows = [(str(vid), v) for vid, values in _all_values(data) for v in values]
        rows = [(vid, v.get("duration") if isinstance(v, dict) else v) for vid, v in rows]
    else:
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
                rows = [(row[id_col].strip(), row[dur_col]) for row in reader if row.get(id_col)]
        except csv.Error as e:
            raise DataError(f"not a valid CSV file ({e})", path=str(p)) from e
        except UnicodeDecodeError as e:
            raise DataError(f"not UTF-8 text ({e.reason})", path=str(p)) from e
    seen: dict[str, list] = {}
    for vid, value in rows:
        seen.setdefault(vid, []).append(value)
    out: dict[str, Any] = {}
    for vid, values in seen.items():
        distinct = list(dict.fromkeys(_duration_text(v) for v in values))
        if len(distinct) > 1:
            out[vid] = ConflictingDuration(tuple(values))
        else:
            out[vid] = values[0]
            if len(values) > 1:
                policy.warn(WARN_REPEAT_MERGED, len(values) - 1)
    return out


def _all_values(data: dict) -> list[tuple[str, list]]:
    """Every ``(key, [values in file order])`` of a parsed JSON object, repeats included."""
    repeats = data.repeats if isinstance(data, JSONObject) else {}
    return [(k, repeats.get(k, [v])) for k, v in data.items()]


def _duration_text(value: Any) -> Any:
    """Durations compare as numbers when they are numbers (``30``, ``"30.0"``), else as is."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return repr(value)
    return x if math.isfinite(x) else repr(value)


def video_duration(durations: dict[str, Any], vid: str, durations_path: Any,
                   where: Where) -> float:
    """The checked duration of ``vid`` from :func:`read_durations`; DataError when it is
    missing, invalid, or listed twice with different values."""
    if vid not in durations:
        raise where.error(f"video duration unknown: {vid!r} is not in {durations_path}")
    value = durations[vid]
    if isinstance(value, ConflictingDuration):
        raise where.error(f"{durations_path} lists the video {len(value.values)} times with "
                          f"different durations {', '.join(map(repr, value.values))}")
    return check_duration(value, where)


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
