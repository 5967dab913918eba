"""Feature extractors: ``create_extractor(name, **params)``, ``list_extractors()``.

- ``colorhist``: grid colour histograms and motion energy (no weights, :mod:`.handcrafted`);
- ``clip``: CLIP image embeddings from a local checkpoint (:mod:`.clip`; the ``clip`` extra).
"""

from momentloc.video.extractors.base import (ExtractedVideo, FeatureExtractor, check_same,
                                             create_extractor, extractor_from_spec, format_id,
                                             list_extractors, parse_id, register_extractor)
from momentloc.video.extractors import clip, handcrafted  # noqa: F401  (registration)

__all__ = ["ExtractedVideo", "FeatureExtractor", "check_same", "create_extractor",
           "extractor_from_spec", "format_id", "list_extractors", "parse_id",
           "register_extractor"]
