"""The CLIP extractor on tiny randomly initialized checkpoints (no download)."""

import json

import numpy as np
import pytest
from videofiles import ramp_frames

from momentloc.errors import ConfigError
from momentloc.video.extractors import create_extractor, extractor_from_spec

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")

transformers = pytest.importorskip("transformers", reason="the 'clip' extra is not installed")

TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
              image_size=32, patch_size=16)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A CLIPModel (12-d projection), a second one with other weights, a CLIPVisionModel."""
    import torch

    root = tmp_path_factory.mktemp("clip")
    cfg = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=12)
    paths = {}
    for name, seed in (("clip_a", 0), ("clip_b", 1)):
        torch.manual_seed(seed)
        transformers.CLIPModel(cfg).save_pretrained(root / name)
        paths[name] = root / name
    (paths["clip_a"] / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    torch.manual_seed(2)
    transformers.CLIPVisionModel(cfg.vision_config).save_pretrained(root / "vision")
    paths["vision"] = root / "vision"
    return paths


def test_clip_features_are_clip_means_of_unit_embeddings(checkpoints, write):
    ex = create_extractor("clip", model=str(checkpoints["clip_a"]), clip_rate=1.0, frames_per_clip=2)
    assert ex.dim == 12 and ex.image_size == 32
    assert ex.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    result = ex.extract(write("v.mp4", ramp_frames(24, height=48, width=64), fps=8))
    feats = result.features
    assert feats.shape == (3, 12) and feats.dtype == np.float32 and np.isfinite(feats).all()
    norms = np.linalg.norm(feats, axis=1)
    assert np.all(norms <= 1 + 1e-5) and np.all(norms > 0.5)   # means of unit vectors
    frames = np.repeat(ramp_frames(1, height=48, width=64)[None], 2, axis=1)   # (1, 2, H, W, 3)
    one = ex.encode(frames)
    np.testing.assert_allclose(np.linalg.norm(one), 1.0, rtol=1e-5)  # identical frames


def test_vision_only_checkpoint_uses_the_pooled_output(checkpoints):
    ex = create_extractor("clip", model=str(checkpoints["vision"]))
    assert ex.dim == 16 and "pooled" in ex.layer


def test_fingerprint_follows_the_weights_not_the_path(checkpoints, tmp_path):
    import shutil

    a = create_extractor("clip", model=str(checkpoints["clip_a"]))
    moved = tmp_path / "moved"
    shutil.copytree(checkpoints["clip_a"], moved)
    spec = a.feature_spec("f.hdf5")
    again = extractor_from_spec(spec, model=str(moved))           # same weights elsewhere
    assert again.fingerprint == a.fingerprint
    with pytest.raises(ConfigError, match="not the ones"):
        extractor_from_spec(spec, model=str(checkpoints["clip_b"]))


def test_missing_or_bad_model_dirs(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        create_extractor("clip", model=str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        create_extractor("clip", model=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="never downloads"):
        create_extractor("clip", model="nobody/no-such-clip-model")
