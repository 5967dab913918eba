"""Video files -> colorhist features -> 2D-TAN beats the prior baseline on the shapes world."""

import pytest
import torch

from momentloc.config import load_config
from momentloc.engine.runs import with_dataset
from momentloc.engine.trainer import train
from momentloc.video.shapes import synthesize_shapes

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


@pytest.mark.slow
def test_tan2d_on_extracted_features_beats_the_prior(tmp_path):
    card = synthesize_shapes("tiny", 0, tmp_path / "world", videos=(40, 16)).card_path
    # the synthetic preset at half width, 3x3 map kernels and 2 clips/s input (a CPU budget)
    cfg = load_config("tan2d", "synthetic", [
        "train.epochs=20", "train.progress=false", "train.batch_size=16", "optim.lr=3e-3",
        "data.num_clips=32", "model.kernel_size=3", "model.hidden_dim=32", "model.lstm_hidden=32"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small spends a second thread's time waiting
    try:
        result = train(with_dataset(cfg, str(card), None), tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    model, prior = result.test_metrics, result.baseline_metrics
    assert model["R1@0.5"] > prior["R1@0.5"] + 0.05, (model, prior)   # 35.0 vs 25.0 here
    assert model["mIoU"] > prior["mIoU"], (model, prior)
