"""Many videos and queries with one loaded run: ``momentloc predict RUN --videos ... --queries ...``.

- :func:`find_inputs` turns a directory, a glob pattern or a list file into video files by id;
- :func:`read_jobs` reads the queries: a text file (one sentence a line, asked of every video),
  or JSONL / CSV pairing each query with a video;
- :func:`run_jobs` localizes them and writes one JSONL or CSV of ranked moments.

The output is resumable: (video, query) pairs already in it are skipped, and each video's
results are appended with one write, so a kill loses at most the video being processed (a
partial last line is cut off on the next start). Under torchrun the videos are sharded over
the processes; each writes its own hidden part file next to the output and rank 0 merges them
into the output (atomically) once every rank is done.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from momentloc.engine.distributed import DistInfo, all_gather_objects, barrier
from momentloc.engine.inference import Prediction, Predictor
from momentloc.errors import ConfigError, DataError

log = logging.getLogger("momentloc.predict")

CSV_COLUMNS = ["video", "query", "duration", "rank", "start", "end", "score", "unknown_words",
               "warning"]


@dataclass
class Job:
    """Queries to localize in one video file."""

    video: str
    path: Path
    queries: list[str]


# -- inputs ----------------------------------------------------------------------------------
def _video_files(paths: Iterable[Path], where: str) -> dict[str, Path]:
    from momentloc.video.decode import VIDEO_EXTENSIONS

    out: dict[str, Path] = {}
    for p in paths:
        if p.suffix.lower() not in VIDEO_EXTENSIONS:
            raise ConfigError(f"{where}: {p} is not a video file ({', '.join(VIDEO_EXTENSIONS)})")
        if not p.is_file():
            raise ConfigError(f"{where}: {p}: no such video file")
        if p.stem in out and out[p.stem] != p:
            raise ConfigError(f"{where}: two videos have the id {p.stem!r}: {out[p.stem]} and {p}")
        out[p.stem] = p
    if not out:
        raise ConfigError(f"{where}: no video file")
    return out


def find_inputs(spec: str | os.PathLike) -> dict[str, Path]:
    """Video files by id (file name without extension) from a directory, a glob pattern
    (``videos/*.mp4``, ``**`` allowed) or a list file (one path a line, relative to the list's
    directory; blank lines and ``#`` comments skipped).

    Raises:
        ConfigError: nothing matches, a listed file is missing or not a video, or two files
            share an id.
    """
    from momentloc.video.decode import VIDEO_EXTENSIONS
    from momentloc.video.extract import find_videos

    text = str(spec)
    path = Path(text)
    if path.is_dir():
        return find_videos(path)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return _video_files([path], text)
    if path.is_file():
        lines = read_text(path, "list of videos").splitlines()
        paths = [path.parent / s.strip() for s in lines if s.strip() and not s.startswith("#")]
        return _video_files(paths, str(path))
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if Path(p).suffix.lower() in VIDEO_EXTENSIONS and Path(p).is_file())
        if not found:
            raise ConfigError(f"{text}: no video file matches")
        return _video_files(found, text)
    raise ConfigError(f"{text}: not a directory, a video file, a list of videos or a glob pattern "
                      f"that matches any")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file's content, or ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text {what} (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what} ({e.strerror or e})") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_jobs(videos: dict[str, Path], queries_file: str | os.PathLike | None = None,
              queries: Iterable[str] = ()) -> list[Job]:
    """What to localize where, in the order of ``videos``.

    ``queries`` (sentences) are asked of every video. ``queries_file`` is a text file of such
    sentences (one a line), or ``.jsonl`` / ``.csv`` with ``video`` and ``query`` fields
    pairing each sentence with a video (an id, file name or path whose stem is in ``videos``).
    Whitespace runs in a query become one space; a pair given twice is asked once.

    Raises:
        ConfigError: an unreadable file, a malformed line, a missing field or an unknown
            video (naming the file and line), or no query at all.
    """
    everywhere = [_one_line(q) for q in queries]
    pairs: list[tuple[str, str]] = []
    if queries_file is not None:
        path = Path(queries_file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such queries file")
        text = read_text(path, "queries file")
        kind = path.suffix.lower()
        if kind in (".jsonl", ".csv"):
            if kind == ".jsonl":
                rows = []
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append((n, json.loads(line)))
                        except json.JSONDecodeError as e:
                            raise DataError(f"not JSON ({e.msg})", path=str(path), line=n) from None
            else:
                reader = csv.DictReader(io.StringIO(text))
                rows = [(n + 2, row) for n, row in enumerate(reader)]
            for n, row in rows:
                if not isinstance(row, dict) or not row.get("video") or not row.get("query"):
                    raise DataError("needs a 'video' and a 'query' field", path=str(path), line=n)
                name = str(row["video"])
                vid = name if name in videos else Path(name).stem
                if vid not in videos:
                    raise DataError(f"video {name!r} is not among the --videos "
                                    f"({len(videos)} files)", path=str(path), line=n)
                pairs.append((vid, _one_line(row["query"])))
        else:
            everywhere += [_one_line(s) for s in text.splitlines() if s.strip()]
    per_video: dict[str, dict[str, None]] = {v: dict.fromkeys(everywhere) for v in videos}
    for vid, q in pairs:
        per_video[vid][q] = None
    jobs = [Job(v, videos[v], [q for q in qs if q]) for v, qs in per_video.items()]
    jobs = [j for j in jobs if j.queries]
    if not jobs:
        raise ConfigError("no query to localize (give --query or --queries FILE)")
    return jobs


# -- the results file --------------------------------------------------------------------------
def output_format(path: str | os.PathLike) -> str:
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


def _csv_rows(p: Prediction) -> list[list]:
    common = [p.video, p.query, p.duration]
    tail = [" ".join(p.unknown_words), p.warning or ""]
    if not p.moments:
        return [common + ["", "", "", ""] + tail]
    return [common + [m.rank, m.start, m.end, m.score] + tail for m in p.moments]


def format_predictions(preds: Iterable[Prediction], fmt: str) -> str:
    """Lines of ``preds`` in the results file format (JSONL: one line each; CSV: one row per
    moment, one row with empty moment fields for a query given no moment)."""
    if fmt == "jsonl":
        return "".join(p.to_json() + "\n" for p in preds)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for p in preds:
        writer.writerows(_csv_rows(p))
    return buf.getvalue()


def read_predictions(path: str | os.PathLike) -> list[Prediction]:
    """Predictions of a results file (JSONL or CSV), in file order; a partial last line (a
    write cut short by a kill) is ignored.

    Raises:
        DataError: a malformed complete line (naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = read_text(path, "results file")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    out: list[Prediction] = []
    if output_format(path) == "jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(Prediction.from_dict(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise DataError(f"not a prediction line ({e})", path=str(path), line=n) from None
        return out
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] != CSV_COLUMNS:
        raise DataError(f"header is not {','.join(CSV_COLUMNS)}", path=str(path), line=1)
    from momentloc.engine.inference import Moment

    for n, row in enumerate(rows[1:], 2):
        try:
            video, query, duration, rank, start, end, score, unknown, warning = row
            if not out or (out[-1].video, out[-1].query) != (video, query):
                out.append(Prediction(video, query, float(duration), [], unknown.split(),
                                      warning or None))
            if rank:
                out[-1].moments.append(Moment(float(start), float(end), float(score), int(rank)))
        except ValueError as e:
            raise DataError(f"not a prediction row ({e})", path=str(path), line=n) from None
    return out


class ResultsFile:
    """A JSONL or CSV results file appended to one video at a time."""

    def __init__(self, path: str | os.PathLike, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = fmt or output_format(self.path)

    def repair(self) -> None:
        """Cut a partial last line off (a write the process did not finish)."""
        if not self.path.is_file():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, preds: list[Prediction]) -> None:
        """Append ``preds`` with one write (and the CSV header when the file is new)."""
        text = format_predictions(preds, self.fmt)
        if self.fmt == "csv" and (not self.path.is_file() or self.path.stat().st_size == 0):
            text = ",".join(CSV_COLUMNS) + "\n" + text
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot write the results ({e.strerror or e})") from None

    def replace(self, preds: list[Prediction]) -> None:
        """Rewrite the file with ``preds`` (a temporary file renamed over it)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        text = format_predictions(preds, self.fmt)
        if self.fmt == "csv":
            text = ",".join(CSV_COLUMNS) + "\n" + text
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


def part_files(out: str | os.PathLike) -> list[Path]:
    """The per-rank part files of ``out`` that exist (from this or an interrupted run)."""
    out = Path(out)
    return sorted(out.parent.glob(f".{out.name}.part*"))


def part_file(out: str | os.PathLike, rank: int) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.part{rank}")


def merge_parts(out: str | os.PathLike, jobs: list[Job]) -> None:
    """Fold the part files into ``out`` (rewritten atomically, in the order of ``jobs``; pairs
    only ``out`` had stay first), then delete them."""
    out = Path(out)
    parts = part_files(out)
    if not parts:
        return
    found: dict[tuple[str, str], Prediction] = {}
    for f in [out, *parts]:
        for p in read_predictions(f):
            found.setdefault((p.video, p.query), p)
    order = [(j.video, q) for j in jobs for q in j.queries]
    wanted = set(order)
    merged = [p for key, p in found.items() if key not in wanted]
    merged += [found[key] for key in order if key in found]
    ResultsFile(out).replace(merged)
    for f in parts:
        f.unlink()


@dataclass
class RunSummary:
    """Videos processed and predictions written by every process together, and the (video,
    query) pairs found already done."""

    out: Path
    videos: int
    written: int
    skipped: int
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "videos": self.videos, "written": self.written,
                "skipped": self.skipped, "failed": dict(self.failed)}


def run_jobs(predictor: Predictor, jobs: list[Job], out: str | os.PathLike, top_k: int = 5,
             show_progress: bool = True, info: DistInfo = DistInfo()) -> RunSummary:
    """Localize every job's queries and write the results to ``out`` (JSONL, or CSV by its
    extension), skipping (video, query) pairs already there. Under torchrun (``info``) each
    rank takes every ``world_size``-th pending video and rank 0 merges the part files.

    A video that cannot be decoded (DataError) is logged and listed in the summary's
    ``failed``; the others are still done, and a rerun tries it again.
    """
    from momentloc.engine.runtime import progress

    out = Path(out)
    fmt = output_format(out)
    target = ResultsFile(part_file(out, info.rank) if info.enabled else out, fmt)
    if info.is_main:
        ResultsFile(out, fmt).repair()
    target.repair()
    barrier(info)
    done = {(p.video, p.query) for f in [out, *part_files(out)] for p in read_predictions(f)}
    pending = [Job(j.video, j.path, [q for q in j.queries if (j.video, q) not in done])
               for j in jobs]
    pending = [j for j in pending if j.queries]
    skipped = sum(len(j.queries) for j in jobs) - sum(len(j.queries) for j in pending)
    mine = pending[info.rank::info.world_size]
    written, failed = 0, {}
    for job in progress(mine, desc="predict", unit="video", enabled=show_progress and info.is_main):
        try:
            preds = predictor.predict(job.path, job.queries, top_k)
        except DataError as e:  # a file that cannot be decoded: the others still get done
            log.warning("%s skipped: %s", job.path, e)
            failed[job.video] = str(e)
            continue
        target.append(preds)
        written += len(preds)
    barrier(info)
    if info.is_main and (info.enabled or part_files(out)):
        merge_parts(out, jobs)
    counts = all_gather_objects((len(mine), written, failed), info)
    return RunSummary(out, sum(c[0] for c in counts), sum(c[1] for c in counts), skipped,
                      {v: why for c in counts for v, why in c[2].items()})
