"""From video files to clip features and moments (docs/video.md).

- :mod:`momentloc.video.decode`: decoding and clip sampling with PyAV (timestamps, rotation,
  bounded work on bad files);
- :mod:`momentloc.video.extractors`: feature extractors behind one registry (``colorhist``
  needs no weights; ``clip`` loads a local CLIP checkpoint);
- :mod:`momentloc.video.extract`: ``momentloc extract`` (a resumable HDF5 feature store plus
  a sidecar with the card's features section and durations), and features of one video with
  the extractor a run's card records;
- :mod:`momentloc.video.shapes`: the rendered synthetic world (``momentloc synth --preset shapes``).

PyAV (the ``video`` extra) and transformers (the ``clip`` extra) are imported only when used.
"""
