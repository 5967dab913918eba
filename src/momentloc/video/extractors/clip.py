"""``clip``: CLIP image embeddings of a clip's frames, averaged (per-clip mean).

The checkpoint is a local directory written by ``save_pretrained`` (``CLIPModel``,
``CLIPVisionModelWithProjection`` or ``CLIPVisionModel``), or a Hugging Face model id that is
already in the user's cache. Nothing is ever downloaded (``local_files_only=True``).
Hugging Face ``transformers`` (the ``clip`` extra) is the standard loader of these checkpoints;
it is imported only when this extractor is built.

Frames are resized (shorter side to the model's image size, bicubic, antialiased), centre
cropped and normalized with the checkpoint's mean and std (``preprocessor_config.json`` when
present, else CLIP's). Each frame's embedding is L2-normalized (CLIP compares by cosine), and
a clip's feature is the mean over its frames.

The extractor's id records a fingerprint of the weights (a hash of every tensor's name, shape
and a strided sample of its values), so features of another checkpoint are refused even when
it sits at the same path; the path itself may differ between machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from momentloc.errors import ConfigError
from momentloc.video.decode import ClipSampling
from momentloc.video.deps import require
from momentloc.video.extractors.base import FeatureExtractor, register_extractor

log = logging.getLogger("momentloc.video")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def weights_fingerprint(module: torch.nn.Module, samples: int = 1024) -> str:
    """12 hex digits identifying a model's weights, independent of where they are stored."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1).to("cpu", torch.float32)
        step = max(1, flat.numel() // samples)
        h.update(f"{name}:{tuple(tensor.shape)}".encode())
        h.update(flat[::step].numpy().tobytes())
    return h.hexdigest()[:12]


def _load(model: str):
    """``(embed(pixels) -> (n, D), dim, image_size, layer, mean, std, torch module)``."""
    transformers = require("transformers")
    source = Path(model).expanduser()
    local = source.exists()
    if local and not (source / "config.json").is_file():
        raise ConfigError(f"{source}: not a model directory (no config.json); give a directory "
                          f"written by save_pretrained")
    where = str(source) if local else model
    if not local and ("/" not in model or model.startswith((".", "/", "~"))):
        raise ConfigError(f"{model}: CLIP model directory not found")
    try:
        cfg = transformers.AutoConfig.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{model}: no such local directory and not in the Hugging Face cache "
                          f"(momentloc never downloads weights; give --model-dir) ({e})") from e
    kind = getattr(cfg, "model_type", "")
    arch = set(getattr(cfg, "architectures", None) or ())
    try:
        if kind == "clip":
            net = transformers.CLIPModel.from_pretrained(where, local_files_only=True)
            vision, dim = cfg.vision_config, cfg.projection_dim
            layer = "image embedding (visual projection)"

            def embed(px):
                out = net.get_image_features(pixel_values=px)
                return out if torch.is_tensor(out) else out.pooler_output
        elif kind == "clip_vision_model" and "CLIPVisionModelWithProjection" in arch:
            net = transformers.CLIPVisionModelWithProjection.from_pretrained(
                where, local_files_only=True)
            vision, dim, layer = cfg, cfg.projection_dim, "image embedding (visual projection)"

            def embed(px):
                return net(pixel_values=px).image_embeds
        elif kind == "clip_vision_model":
            net = transformers.CLIPVisionModel.from_pretrained(where, local_files_only=True)
            vision, dim, layer = cfg, cfg.hidden_size, "pooled output (post-layernorm class token)"

            def embed(px):
                return net(pixel_values=px).pooler_output
        else:
            raise ConfigError(f"{model}: model type {kind!r} is not a CLIP checkpoint "
                              f"(clip or clip_vision_model)")
    except OSError as e:
        raise ConfigError(f"{model}: cannot load the CLIP weights ({e})") from e
    mean, std = CLIP_MEAN, CLIP_STD
    pre = source / "preprocessor_config.json" if local else None
    if pre is not None and pre.is_file():
        spec = json.loads(pre.read_text(encoding="utf-8"))
        mean, std = tuple(spec.get("image_mean", mean)), tuple(spec.get("image_std", std))
    return embed, int(dim), int(vision.image_size), layer, mean, std, net.eval()


@register_extractor("clip")
class CLIPExtractor(FeatureExtractor):
    """Per-clip mean of L2-normalized CLIP image embeddings.

    Args:
        model: checkpoint directory, or a model id in the local Hugging Face cache.
        clip_rate, frames_per_clip: clip sampling.
        device: where the network runs (``cpu``, ``cuda``).
        batch_frames: frames per forward pass.
        fingerprint: when given (a rebuilt extractor), the loaded weights must match it.
    """

    location_params = ("model",)

    def __init__(self, model: str, clip_rate: float = 1.0, frames_per_clip: int = 4,
                 device: str = "cpu", batch_frames: int = 64, fingerprint: str | None = None,
                 max_side: int | None = None):
        embed, dim, size, layer, mean, std, net = _load(str(model))
        # Decode with the shorter side of common aspect ratios at least the model's size.
        super().__init__(ClipSampling(clip_rate, frames_per_clip, max_side or 2 * size))
        local = Path(model).expanduser()
        self.model = str(local.resolve()) if local.exists() else str(model)
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self._embed = embed
        self.dim, self.image_size, self.layer = dim, size, layer
        self.batch_frames = int(batch_frames)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self.fingerprint = weights_fingerprint(net)
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise ConfigError(f"{model}: the weights (fingerprint {self.fingerprint}) are not the "
                              f"ones the features were made with ({fingerprint})")
        self.normalization = "l2 per frame, then mean over the clip's frames"

    def params(self) -> dict:
        return {"model": self.model, "fingerprint": self.fingerprint, **super().params()}

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``(n, H, W, 3)`` uint8 -> ``(n, 3, S, S)`` normalized pixels (resize shorter side
        to ``S``, centre crop)."""
        x = frames.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        s = self.image_size
        scale = s / min(h, w)
        nh, nw = max(s, math.ceil(h * scale - 1e-6)), max(s, math.ceil(w * scale - 1e-6))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[..., top:top + s, left:left + s].clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """``(N, F, H, W, 3)`` uint8 -> ``(N, D)`` float32."""
        n, f = frames.shape[:2]
        flat = torch.from_numpy(np.ascontiguousarray(frames)).reshape(n * f, *frames.shape[2:])
        out = []
        for start in range(0, n * f, self.batch_frames):  # bounded memory, not a hot loop
            emb = self._embed(self.preprocess(flat[start:start + self.batch_frames]))
            out.append(F.normalize(emb.float(), dim=-1))
        emb = torch.cat(out).view(n, f, -1).mean(1)
        return emb.cpu().numpy().astype(np.float32, copy=False)
