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

from momentloc.data.card import DatasetCard
from momentloc.data.converters.activitynet import read_activitynet, write_activitynet
from momentloc.data.converters.charades import read_charades_sta, write_charades_sta
from momentloc.data.converters.didemo import read_didemo, write_didemo
from momentloc.data.converters.qvhighlights import read_qvhighlights, write_qvhighlights
from momentloc.data.converters.records import read_records_split
from momentloc.data.converters.tacos import read_tacos, write_tacos
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord
from momentloc.errors import ConfigError

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
        Records in file order; ``query_id`` is unique within the split.
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
    ann = card.path(files.annotations)
    if files.durations is not None and card.format not in _DURATIONS:
        raise ConfigError(f"dataset {card.name!r}, split {split!r}: format {card.format} takes "
                          "no durations file")
    if _DURATIONS.get(card.format) and files.durations is None:
        raise ConfigError(f"dataset {card.name!r}, split {split!r}: format {card.format} needs a "
                          "durations file (Charades_v1_<split>.csv or charades.json)")
    durations = card.path(files.durations) if files.durations is not None else None
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
