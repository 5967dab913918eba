"""Training, evaluation, checkpoints and prediction files.

``train`` and ``Trainer`` are imported lazily so that light modules of this package (the
predictions file, checkpoints) load without the data pipeline.
"""

__all__ = ["TrainResult", "Trainer", "train"]


def __getattr__(name):
    if name in __all__:
        from momentloc.engine import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'momentloc.engine' has no attribute {name!r}")
