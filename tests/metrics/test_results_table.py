"""The printed results table: header fields, percent with two decimals, missing values."""

import pytest

from momentloc.metrics.table import format_results, header_line

HEADER = {"dataset": "charades-sta", "split": "test", "protocol": "standard", "nms": 0.45,
          "features": "I3D avg-pool (1024-d)"}


def test_table_prints_percent_under_its_setting():
    rows = [("tan2d", {"R1@0.5": 0.41372, "mIoU": 0.3}), ("prior", {"R1@0.5": 0.19})]
    text = format_results(rows, ["R1@0.5", "R5@0.5", "mIoU"], HEADER | {"queries": 3720})
    first, *table = text.splitlines()
    assert first == ("dataset: charades-sta | split: test | protocol: standard | NMS: 0.45 | "
                     "features: I3D avg-pool (1024-d) | queries: 3720")
    assert table[0].split() == ["model", "R1@0.5", "R5@0.5", "mIoU"]
    assert table[2].split() == ["tan2d", "41.37", "-", "30.00"]
    assert table[3].split() == ["prior", "19.00", "-", "-"]


def test_every_header_field_is_required():
    with pytest.raises(ValueError, match="nms"):
        header_line({k: v for k, v in HEADER.items() if k != "nms"})
