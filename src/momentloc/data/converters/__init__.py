"""Readers and writers of the benchmark annotation formats, all producing ``MomentRecord``.

``load_split(card, split)`` reads one split of a dataset card, dispatching on ``card.format``:

=================  ==========================================  =============================
format             files                                       reader
=================  ==========================================  =============================
``charades_sta``   ``charades_sta_<split>.txt`` + durations    :func:`read_charades_sta`
``activitynet``    ``train.json`` / ``val_1.json`` / ...       :func:`read_activitynet`
``tacos``          2D-TAN JSON (frames) or TALL/CMIN list      :func:`read_tacos`
``didemo``         ``<split>_data.json`` (+ durations)         :func:`read_didemo`
``qvhighlights``   QVHighlights-style JSONL                    :func:`read_qvhighlights`
``records``        momentloc records JSONL                     :func:`read_records_split`
=================  ==========================================  =============================

The rules for noisy input (clipping, swapping, dropping, duplicates) are in ``common`` and
docs/data.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from momentloc.data.card import DatasetCard, part_name
from momentloc.data.converters.activitynet import read_activitynet, write_activitynet
from momentloc.data.converters.charades import read_charades_sta, write_charades_sta
from momentloc.data.converters.didemo import read_didemo, write_didemo
from momentloc.data.converters.qvhighlights import read_qvhighlights, write_qvhighlights
from momentloc.data.converters.records import read_records_split
from momentloc.data.converters.tacos import read_tacos, write_tacos
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord
from momentloc.errors import ConfigError, DataError

__all__ = [
    "load_split", "read_activitynet", "read_charades_sta", "read_didemo", "read_qvhighlights",
    "read_records_split", "read_tacos", "write_activitynet", "write_charades_sta", "write_didemo",
    "write_qvhighlights", "write_tacos",
]

log = logging.getLogger("momentloc.data")

# Formats whose split may name a ``durations`` file, and whether it must.
_DURATIONS = {"charades_sta": True, "didemo": False}


def load_split(card: DatasetCard, split: str,
               policy: InputPolicy | None = None) -> list[MomentRecord]:
    """Read split ``split`` of ``card`` into normalized records.

    Args:
        card: a loaded dataset card (its ``root`` resolves relative paths).
        split: a key of ``card.splits`` (a split name such as ``val_2``, not a role).
        policy: bad-input policy; default raises on the first bad item. Repairs are counted
            in ``policy.warnings`` and skipped items in ``policy.skipped``.
    Returns:
        Records in file order (a union's files in the card's order); ``query_id`` is unique
        within the split (a union's ids carry each file's name; a repeated id is bad input).
    Raises:
        ConfigError: unknown split, or a Charades-STA split without a durations file.
        DataError: missing or unreadable file; bad input under the ``error`` policy (the
            message names the file, the line or record, and the video).
    """
    policy = policy or InputPolicy()
    if split not in card.splits:
        raise ConfigError(f"dataset {card.name!r} has no split {split!r}; splits: "
                          f"{', '.join(card.splits)}")
    files = card.splits[split]
    if files.durations is not None and card.format not in _DURATIONS:
        raise ConfigError(f"dataset {card.name!r}, split {split!r}: format {card.format} takes "
                          "no durations file")
    if _DURATIONS.get(card.format) and files.durations is None:
        raise ConfigError(f"dataset {card.name!r}, split {split!r}: format {card.format} needs a "
                          "durations file (Charades_v1_<split>.csv or charades.json)")
    parts = list(zip(files.annotation_files(), files.duration_files()))
    if len(parts) == 1:
        return _read_file(card, split, card.path(parts[0][0]), parts[0][1], policy)
    records: list[MomentRecord] = []
    first: dict[str, Path] = {}
    for name, durations in parts:
        part = part_name(name)
        ann = card.path(name)
        for r in _read_file(card, split, ann, durations, policy):
            rest = r.query_id[len(split) + 1:] if r.query_id.startswith(f"{split}:") else r.query_id
            qid = f"{split}:{part}:{rest}"
            if qid in first:
                raise DataError(f"query id {qid!r} of split {split!r} is also in {first[qid]}",
                                path=str(ann))
            first[qid] = ann
            records.append(replace(r, query_id=qid))
    log.debug("%s/%s: %d queries from the union of %s", card.name, split, len(records),
              ", ".join(n for n, _ in parts))
    return records


def _read_file(card: DatasetCard, split: str, ann: Path, durations_name: str | None,
               policy: InputPolicy) -> list[MomentRecord]:
    """Records of one annotation file of ``split``."""
    durations = card.path(durations_name) if durations_name is not None else None
    fmt = card.format
    before, skipped = dict(policy.warnings), policy.skipped
    if fmt == "charades_sta":
        records = read_charades_sta(ann, durations, split, policy)
    elif fmt == "activitynet":
        records = read_activitynet(ann, split, policy)
    elif fmt == "tacos":
        records = read_tacos(ann, split, policy)
    elif fmt == "didemo":
        records = read_didemo(ann, split, policy, durations)
    elif fmt == "qvhighlights":
        records = read_qvhighlights(ann, split, policy)
    elif fmt == "records":
        records = read_records_split(ann, split, policy)
    else:  # the card loader validates the format; this guards hand-built cards
        raise ConfigError(f"dataset {card.name!r}: unknown format {fmt!r}")
    # Per-split counts at debug level: callers reading several splits with one policy log
    # the totals themselves (policy.log_summary), and `momentloc stats` prints them.
    repairs = {k: n - before.get(k, 0) for k, n in policy.warnings.items() if n != before.get(k, 0)}
    log.debug("%s/%s: %d queries from %s; skipped %d; repairs %s", card.name, split, len(records),
              ann, policy.skipped - skipped, repairs or "none")
    return records
