"""The printed results table: metrics in percent under a line saying what produced them.

Every printed result carries its dataset, split, protocol, NMS threshold and features
(formats spec, "Evaluation conventions"), so a number is never read without its setting::

    dataset: charades-sta | split: test | protocol: standard | NMS: 0.45 | features: I3D ...
    model           R1@0.5  R1@0.7  R5@0.5  R5@0.7   mIoU
    --------------  ------  ------  ------  ------  -----
    tan2d            xx.xx   xx.xx   xx.xx   xx.xx  xx.xx
    prior baseline   xx.xx   xx.xx   xx.xx   xx.xx  xx.xx
"""

from __future__ import annotations

from typing import Mapping, Sequence

from momentloc.cli.common import format_table

HEADER_FIELDS = ("dataset", "split", "protocol", "nms", "features")
_LABELS = {"nms": "NMS"}


def header_line(header: Mapping[str, object]) -> str:
    """``dataset: .. | split: .. | protocol: .. | NMS: .. | features: ..`` (then any extras).

    Raises:
        ValueError: a field of :data:`HEADER_FIELDS` is missing.
    """
    missing = [k for k in HEADER_FIELDS if k not in header]
    if missing:
        raise ValueError(f"results header lacks {', '.join(missing)}: every printed result "
                         f"says {', '.join(HEADER_FIELDS)}")
    keys = [*HEADER_FIELDS, *(k for k in header if k not in HEADER_FIELDS)]
    return " | ".join(f"{_LABELS.get(k, k)}: {header[k]}" for k in keys)


def format_results(rows: Sequence[tuple[str, Mapping[str, float]]], keys: Sequence[str],
                   header: Mapping[str, object], label: str = "model") -> str:
    """Text table of metrics in percent with two decimals, under :func:`header_line`.

    Args:
        rows: ``(label, metrics)`` pairs; metrics are fractions in [0, 1] (as stored in
            JSON), keyed like ``R1@0.5``, ``mIoU``, ``didemo/R1``. A key a row lacks prints
            as ``-``.
        keys: the metric columns, in order.
        header: at least ``dataset``, ``split``, ``protocol``, ``nms``, ``features``.
        label: heading of the first column.
    """
    body = [[name, *(100.0 * float(m[k]) if m.get(k) is not None else None for k in keys)]
            for name, m in rows]
    return header_line(header) + "\n" + format_table([label, *keys], body)
