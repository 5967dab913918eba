"""Results headers and records name both protocols: the run's ``eval.protocol`` (decoding, NMS,
hit rule) and the dataset card's (which extra metrics are added)."""

from __future__ import annotations

from dataclasses import replace

from momentloc.cli.results import results_header, results_table
from momentloc.config.load import load_config
from momentloc.data.card import load_card
from momentloc.engine.runs import protocol_label, protocols


def test_protocols_record_and_label():
    p = protocols("cmin", "standard")
    assert p == {"eval": "cmin", "dataset": "standard"}
    assert protocol_label(p) == "eval cmin, dataset standard"


def test_header_names_the_eval_protocol_beside_the_dataset_protocol(synth_card):
    card = load_card(str(synth_card("activitynet", "tiny")))
    assert card.protocol == "standard"
    cfg = load_config("csmgan", "synthetic", ["eval.protocol=cmin"])
    header = results_header(cfg, card, "test")
    assert header["protocol"] == "eval cmin, dataset standard"
    text = results_table("csmgan", {"R1@0.5": 0.25}, {"R1@0.5": 0.1}, cfg, card, "test")
    assert "| protocol: eval cmin, dataset standard |" in text.splitlines()[0]

    didemo = replace(card, protocol="didemo")
    cfg = load_config("tan2d", "synthetic", ["eval.protocol=tan2d", "eval.iou_mode=inclusive_index"])
    assert (results_header(cfg, didemo, "val")["protocol"]
            == "eval tan2d, dataset didemo, IoU inclusive_index")
