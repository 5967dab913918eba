"""The typed batch every model receives."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """A padded, masked batch of (video, query, moment) samples.

    Attributes:
        video_feats: ``(B, T, Dv)`` float clip features (T = num_clips of the config).
        video_mask: ``(B, T)`` bool, True on real clips.
        query_feats: ``(B, L, Dw)`` float word vectors (frozen GloVe rows; zero on padding).
        query_ids: ``(B, L)`` long vocabulary ids (0 = padding, 1 = unknown word).
        query_mask: ``(B, L)`` bool, True on real words (every query keeps at least one).
        spans: ``(B, 2)`` float target (start, end) in seconds.
        durations: ``(B,)`` float video durations in seconds.
        meta: one dict per sample: ``query_id``, ``video_id``, ``query``,
            ``annotator_spans`` (list of [start, end]) and, when read from a feature store,
            ``num_features`` and ``span_rows`` (the video's feature rows before resampling and
            the moment on them, float64; CSMGAN's release targets are computed from them).
    """

    video_feats: torch.Tensor
    video_mask: torch.Tensor
    query_feats: torch.Tensor
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    spans: torch.Tensor
    durations: torch.Tensor
    meta: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return self.video_feats.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """Move every tensor to ``device`` (returns a new Batch)."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        return Batch(**kw)

    def pin_memory(self) -> "Batch":
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.pin_memory() if isinstance(v, torch.Tensor) else v
        return Batch(**kw)
