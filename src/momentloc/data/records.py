"""The one normalized record every reader produces, and its JSONL form.

Example record (JSONL line)::

    {"query_id": "test:12", "video_id": "3MSZA", "duration": 33.67,
     "query": "person turn a light on.", "span": [24.3, 30.4],
     "annotator_spans": [], "split": "test"}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Iterable

from momentloc.atomic import atomic_write_text  # noqa: F401  (re-exported: the one atomic writer)
from momentloc.errors import DataError

Span = tuple[float, float]


@dataclass(frozen=True)
class MomentRecord:
    """One (video, query, moment) sample.

    Attributes:
        query_id: unique within the dataset.
        video_id: the video's id as the annotation file writes it (the card's
            ``features.key_template`` maps it to the feature store's key).
        duration: video duration in seconds (> 0).
        query: the sentence as written in the annotation file (whitespace collapsed).
        span: target moment (start, end) in seconds, 0 <= start <= end <= duration.
        annotator_spans: every annotator's moment where there are several (DiDeMo,
            QVHighlights windows), else empty. ``span`` is the one trained on.
        split: split name the record was read from.
    """

    query_id: str
    video_id: str
    duration: float
    query: str
    span: Span
    annotator_spans: tuple[Span, ...] = field(default_factory=tuple)
    split: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["span"] = list(self.span)
        d["annotator_spans"] = [list(s) for s in self.annotator_spans]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "MomentRecord":
        return cls(
            query_id=str(d["query_id"]),
            video_id=str(d["video_id"]),
            duration=float(d["duration"]),
            query=str(d["query"]),
            span=(float(d["span"][0]), float(d["span"][1])),
            annotator_spans=tuple((float(s), float(e)) for s, e in d.get("annotator_spans", [])),
            split=str(d.get("split", "")),
        )


def write_records(path: str | os.PathLike, records: Iterable[MomentRecord]) -> None:
    """Write records as JSONL (atomically)."""
    atomic_write_text(path, "".join(json.dumps(r.to_json()) + "\n" for r in records))


def read_records(path: str | os.PathLike) -> list[MomentRecord]:
    """Read records written by :func:`write_records`."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(MomentRecord.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
                raise DataError(f"not a moment record ({type(e).__name__}: {e})", path=str(path),
                                line=i) from None
    return out
