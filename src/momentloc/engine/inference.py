"""Using a trained run: rebuild its model from a checkpoint, evaluate it, localize new queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from momentloc.config.schema import ExperimentConfig
from momentloc.data.card import DatasetCard
from momentloc.engine.checkpoint import load_checkpoint
from momentloc.engine.runs import load_run
from momentloc.errors import CheckpointError, ConfigError
from momentloc.models.registry import create_model


def checkpoint_path(run_dir: Path, which: str) -> Path:
    p = Path(which)
    if p.suffix == ".pt":
        return p
    path = run_dir / "checkpoints" / f"{which}.pt"
    if which == "best" and not path.is_file():
        path = run_dir / "checkpoints" / "last.pt"
    return path


def load_model(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu"):
    """``(model, cfg, card, data)`` of a run, the model in eval mode with the checkpoint's weights.

    ``data`` is the run's DataBundle built from its saved artifacts (vocabulary, vectors, PCA).
    """
    from momentloc.data.build import build_data

    run_dir = Path(run_dir)
    cfg, card = load_run(run_dir)
    state = load_checkpoint(checkpoint_path(run_dir, checkpoint), map_location=device)
    if state.get("model_name") != cfg.model_name:
        raise CheckpointError(f"{run_dir}: checkpoint is for {state.get('model_name')!r}, config for "
                              f"{cfg.model_name!r}")
    data = build_data(cfg.data, card, run_dir / "artifacts")
    model = create_model(cfg.model_name, cfg.model, data.context())
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{run_dir}: checkpoint does not fit the model ({str(e).splitlines()[0]})") from e
    return model.to(device).eval(), cfg, card, data


def evaluate_run(run_dir: str | Path, split: str | None = None, checkpoint: str = "best",
                 device: str | torch.device = "cpu", write: bool = True) -> dict:
    """Evaluate a run's model on ``split`` (default: its test role). Writes
    ``predictions_<split>.jsonl`` and ``metrics.json`` into the run dir when ``write``."""
    from momentloc.data.records import atomic_write_text
    from momentloc.engine.baseline import prior_metrics_for
    from momentloc.engine.distributed import DistInfo
    from momentloc.engine.evaluator import predict_lines, score_lines
    from momentloc.engine.predictions import write_predictions

    run_dir = Path(run_dir)
    model, cfg, card, data = load_model(run_dir, checkpoint, device)
    role, dataset = data.dataset_for(split)
    lines = predict_lines(model, dataset, cfg.eval, cfg.train.eval_batch_size, torch.device(device),
                          DistInfo(), full_ranking=card.protocol == "didemo")
    metrics = score_lines(lines, cfg, card)
    split_name = data.split_name(role) if split is None else split
    baseline = prior_metrics_for(data.records("train"), dataset.records, cfg, card)
    out = {"split": split_name, "checkpoint": checkpoint, "metrics": metrics, "prior_baseline": baseline,
           "features": card.features.describe() if card.features else None}
    if write:
        write_predictions(run_dir / f"predictions_{split_name}.jsonl", lines)
        atomic_write_text(run_dir / "metrics.json", json.dumps(out, indent=2))
    return out


@dataclass
class Moment:
    start: float
    end: float
    score: float


class Predictor:
    """Localize free-text queries in a video's clip features with a trained run."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.model, self.cfg, self.card, self.data = load_model(run_dir, checkpoint, device)

    @property
    def config(self) -> ExperimentConfig:
        return self.cfg

    @property
    def dataset_card(self) -> DatasetCard:
        return self.card

    def extract_features(self, path: str | Path, **overrides) -> tuple[np.ndarray, float]:
        """``(features (M, D), duration)`` of a video file, extracted with the extractor the
        run's dataset card records (``momentloc.video``); ``overrides`` such as ``model`` (a
        CLIP checkpoint that moved) may not change what the extractor is."""
        from momentloc.video.extract import features_for_video

        got = features_for_video(self.card, path, **overrides)
        return got.features, got.duration

    def localize(self, features: np.ndarray, duration: float, queries: list[str], top_k: int = 5
                 ) -> list[list[Moment]]:
        """Ranked moments (seconds) for each query in one video.

        Args:
            features: ``(M, D)`` raw clip features of the video (the run's feature kind).
            duration: the video's length in seconds.
            queries: sentences; each gets up to ``top_k`` moments after NMS.
        """
        from momentloc.spans import batched_nms

        if not queries:
            raise ConfigError("no query given")
        if not duration or duration <= 0:
            raise ConfigError(f"video duration must be positive, got {duration}")
        batch = self.data.make_batch(features, duration, queries).to(self.device)
        with torch.no_grad():
            out = self.model(batch)
            cands = self.model.candidates(out, batch)
        keep, kept = batched_nms(cands.spans.float(), cands.scores.float(), self.cfg.eval.nms_thresh,
                                 top_k, cands.valid)
        result = []
        for i in range(len(queries)):
            idx = keep[i][kept[i]]
            spans = cands.spans[i, idx].tolist()
            scores = cands.scores[i, idx].tolist()
            result.append([Moment(float(s), float(e), float(sc)) for (s, e), sc in zip(spans, scores)])
        return result
