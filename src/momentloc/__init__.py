"""momentloc: natural-language moment localization (temporal sentence grounding).

The Python API (:mod:`momentloc.api`, docs/api.md) is importable from here; it is loaded on
first use, so ``import momentloc`` does not import PyTorch::

    import momentloc
    model = momentloc.load("runs/shapes")
    print(model.predict("clips/te0003.mp4", "the red circle grows")[0])
"""

__version__ = "0.1.0"

_API = ("ExperimentConfig", "Moment", "Prediction", "Predictor", "TrainResult", "evaluate", "load",
        "load_config", "predict_files", "synthesize", "train")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from momentloc import api

        return getattr(api, name)
    raise AttributeError(f"module 'momentloc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
