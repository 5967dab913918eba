"""The Python API: what the command line does, from a script, with the same typed configs.

::

    import momentloc
    model = momentloc.load("runs/shapes")
    print(model.predict("clips/te0003.mp4", "the red circle grows")[0])

Everything here is also importable from ``momentloc`` itself (loaded on first use, so
``import momentloc`` stays fast). See docs/api.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from momentloc.config import load_config
from momentloc.config.schema import ExperimentConfig
from momentloc.engine.inference import Moment, Prediction, Predictor
from momentloc.engine.trainer import TrainResult

__all__ = ["ExperimentConfig", "Moment", "Prediction", "Predictor", "TrainResult", "evaluate",
           "load", "load_config", "predict_files", "synthesize", "train"]


def load(run_dir: str | os.PathLike, checkpoint: str = "best", device: str = "cpu",
         cache_dir: str | os.PathLike | bool | None = None, **extractor_overrides) -> Predictor:
    """A trained run (``momentloc train``'s output, or an imported checkpoint's run directory),
    loaded once for many predictions: see :class:`~momentloc.engine.inference.Predictor`
    (``predict``, ``predict_features``, ``predict_many``)."""
    return Predictor(run_dir, checkpoint, device, cache_dir=cache_dir, **extractor_overrides)


def predict_files(run: str | os.PathLike | Predictor, videos, queries_file=None,
                  queries=(), out: str | os.PathLike = "predictions.jsonl", top_k: int = 5,
                  progress: bool = False):
    """``momentloc predict RUN --videos ... --queries ... --out OUT`` from Python: localize
    ``queries`` (and those of ``queries_file``) in the video files ``videos`` (a directory, a
    glob pattern or a list file) and write them to ``out``; pairs already there are skipped.
    Returns the :class:`~momentloc.engine.predict_many.RunSummary`."""
    from momentloc.engine.predict_many import find_inputs, read_jobs, run_jobs

    predictor = run if isinstance(run, Predictor) else load(run)
    jobs = read_jobs(find_inputs(videos), queries_file, [queries] if isinstance(queries, str)
                     else queries)
    return run_jobs(predictor, jobs, out, top_k, show_progress=progress)


def train(config: ExperimentConfig, out: str | os.PathLike, dataset: str | None = None,
          data_root: str | None = None, resume: bool = False) -> TrainResult:
    """Train ``config`` (from :func:`load_config`, e.g. ``load_config("tan2d", "synthetic",
    ["train.epochs=5"])``) into the run directory ``out``, as ``momentloc train`` does;
    ``dataset`` (a card path or benchmark name) and ``data_root`` replace the config's."""
    from momentloc.engine.runs import with_dataset
    from momentloc.engine.trainer import train as train_run

    if dataset is not None or data_root is not None:
        config = with_dataset(config, dataset or config.data.dataset,
                              data_root or config.data.data_root)
    return train_run(config, Path(out), resume=resume)


def evaluate(run_dir: str | os.PathLike, split: str | None = None, checkpoint: str = "best",
             device: str = "cpu", write: bool = True, overwrite: bool = False) -> dict:
    """``momentloc evaluate RUN_DIR`` from Python: ``{"split", "metrics", "prior_baseline",
    ...}`` with metrics as fractions keyed like ``R1@0.5``. With ``write``, an earlier
    evaluation's files of the same split and checkpoint are refused unless ``overwrite``
    (``momentloc evaluate --overwrite``)."""
    from momentloc.engine.inference import evaluate_run

    return evaluate_run(run_dir, split, checkpoint, device, write, overwrite)


def synthesize(preset: str, out: str | os.PathLike, size: str = "tiny", seed: int = 0,
               overwrite: bool = False) -> Path:
    """``momentloc synth`` from Python: write a synthetic benchmark (``charades``,
    ``activitynet``, ``tacos``, or the rendered ``shapes`` videos) into ``out`` and return its
    ``dataset.yaml``."""
    from momentloc.synth import synthesize as synth

    return synth(preset, size, seed, out, overwrite=overwrite).card_path
