"""Multi-scale anchors over a clip sequence: layouts, targets, decoding, scoring heads.

One module serves three ways of placing candidate moments on a sequence of ``T`` steps:

- **centred** (CMIN / CSMGAN eqs. 15-16, common spec B6): ``NΦ`` anchors of widths ``w_i``
  centred at every step, scored from the feature at the centre;
- **sliding** (FIAN sec. 3.4, "content-oriented"): windows of size ``k`` every ``s`` steps,
  scored by a Conv1d whose kernel covers the whole window;
- **ending** (TGN, common spec B7): anchors of lengths ``l_i`` ending at every step, scored
  from the feature at the end, no regression.

The heads differ only in how they place anchors (:class:`AnchorLayout`) and which features
score them; IoU targets, legality, offset decoding and candidates are shared.

Coordinates are step units. An anchor ``(a, b)`` is inclusive, ``a`` and ``b`` possibly
fractional: it covers ``[a, b + 1)``, i.e. seconds ``[a T / n, (b + 1) T / n)`` for a video
of duration ``T`` with ``n`` real steps (common spec 3.1). The ground truth ``(s, e)`` in
seconds covers ``[s n / T, e n / T)``, so the IoU computed in steps equals the IoU in
seconds. Offsets ``(δs, δe)`` refine an anchor to ``(a + δs, b + δe)``; their targets are the
ground truth's inclusive boundaries minus the anchor's, ``(s n/T - a, e n/T - 1 - b)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from momentloc.spans import indices_to_seconds, temporal_iou

if TYPE_CHECKING:  # importing momentloc.models here would import every family, and so this file
    from momentloc.models.base import Candidates

_EPS = 1e-6


@dataclass(frozen=True)
class AnchorLayout:
    """Candidate windows of one sequence length, shared by every video of a batch.

    Attributes:
        bounds: ``(K, 2)`` float inclusive (start, end) in steps.
        level: ``(K,)`` long index of the scale (width / window size) of each anchor.
    """

    bounds: torch.Tensor
    level: torch.Tensor

    @property
    def num_anchors(self) -> int:
        return self.bounds.shape[0]

    def legal(self, lengths: torch.Tensor, end_before_length: bool = False) -> torch.Tensor:
        """``(B, K)`` bool: the anchor lies inside the video's ``lengths[b]`` real steps (its
        end at most the last step; with ``end_before_length`` only below ``lengths[b]``, the
        CSMGAN release's rule, which keeps anchors ending half a step past the last one)."""
        a, b = self.bounds[:, 0], self.bounds[:, 1]
        n = lengths.to(self.bounds.dtype)[:, None]
        inside = b[None, :] < n - _EPS if end_before_length else b[None, :] <= n - 1 + _EPS
        return (a >= -_EPS)[None, :] & inside

    def truncated(self) -> "AnchorLayout":
        """The anchors with bounds truncated toward zero (the CSMGAN release's proposals)."""
        return AnchorLayout(self.bounds.trunc(), self.level)

    def to(self, dtype: torch.dtype) -> "AnchorLayout":
        return AnchorLayout(self.bounds.to(dtype), self.level)

    def iou_steps(self, gt: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` IoU of every anchor with ``(B, 2)`` ground truth ``[s', e')`` in steps."""
        a, b = self.bounds[:, 0], self.bounds[:, 1]
        covered = torch.stack([a, b + 1], -1)                               # (K, 2) [a, b+1)
        return temporal_iou(covered[None], gt.to(a.dtype)[:, None, :])

    def offsets_steps(self, gt: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` offsets ``(s' - a, e' - 1 - b)`` that reach ``[s', e')`` from each anchor."""
        a, b = self.bounds[:, 0], self.bounds[:, 1]
        gt = gt.to(a.dtype)
        return torch.stack([gt[:, None, 0] - a[None], gt[:, None, 1] - 1 - b[None]], -1)

    def targets(self, spans: torch.Tensor, durations: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """IoU of every anchor with the ground truth and the offsets that reach it.

        Args:
            spans: ``(B, 2)`` ground truth in seconds. durations: ``(B,)`` seconds.
            lengths: ``(B,)`` real steps per video.
        Returns:
            ``iou (B, K)`` in [0, 1] (anchor as placed, before offsets) and
            ``offsets (B, K, 2)`` targets ``(δs*, δe*)`` in steps.
        """
        gt = ground_truth_steps(spans, durations, lengths)                  # (B, 2) [s', e')
        return self.iou_steps(gt), self.offsets_steps(gt)

    def decode(self, offsets: torch.Tensor | None, durations: torch.Tensor,
               lengths: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` refined anchors in seconds, clipped to the video, start <= end.

        Args:
            offsets: ``(B, K, 2)`` predicted ``(δs, δe)`` in steps, or None (no refinement).
            durations: ``(B,)`` seconds. lengths: ``(B,)`` real steps per video.
        """
        bsz = durations.shape[0]
        idx = self.bounds[None].expand(bsz, -1, -1)
        if offsets is not None:
            idx = idx + offsets.to(idx.dtype)
        n = lengths.to(idx.dtype)[:, None]
        # Express the inclusive indices as fractions of each video's own length so that one
        # call to the shared conversion handles videos with different numbers of real steps.
        unit = torch.stack([idx[..., 0] / n, (idx[..., 1] + 1) / n - 1], -1)
        return indices_to_seconds(unit, durations[:, None].expand(bsz, idx.shape[1]), 1)


def ground_truth_steps(spans: torch.Tensor, durations: torch.Tensor, lengths: torch.Tensor
                       ) -> torch.Tensor:
    """``(B, 2)`` ground truth ``[s n / T, e n / T)`` in (fractional) steps, inside ``[0, n]``."""
    n = lengths.to(spans.dtype)[:, None]
    x = spans / durations.to(spans.dtype)[:, None].clamp_min(_EPS) * n
    return torch.minimum(x.clamp_min(0), n)


def frame_ground_truth(gt: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    """``(B, 2)`` ``[s', e')`` in steps -> the integer steps that cover it, ``[floor(s'),
    ceil(e'))`` (at least one step; ``tol`` absorbs the rounding of seconds <-> steps). As
    inclusive indices ``(floor(s'), ceil(e') - 1)`` these are the release's frame labels."""
    start = torch.floor(gt[:, 0] + tol)
    end = torch.maximum(torch.ceil(gt[:, 1] - tol), start + 1)
    return torch.stack([start, end], -1)


def centered_layout(num_steps: int, widths: tuple[float, ...], device=None) -> AnchorLayout:
    """Anchors of every width centred at every step, ordered step-major: index ``t * NΦ + i``."""
    t = torch.arange(num_steps, device=device, dtype=torch.float32)[:, None]        # (T, 1)
    half = (torch.tensor(widths, device=device, dtype=torch.float32) - 1) / 2       # (NΦ,)
    bounds = torch.stack([t - half, t + half], -1).reshape(-1, 2)
    level = torch.arange(len(widths), device=device).repeat(num_steps)
    return AnchorLayout(bounds, level)


def ending_layout(num_steps: int, lengths: tuple[int, ...], device=None) -> AnchorLayout:
    """Anchors of every length ending at every step (TGN), index ``t * K + i``."""
    t = torch.arange(num_steps, device=device, dtype=torch.float32)[:, None]
    size = torch.tensor(lengths, device=device, dtype=torch.float32)
    bounds = torch.stack([t - size + 1, t.expand(-1, len(lengths))], -1).reshape(-1, 2)
    level = torch.arange(len(lengths), device=device).repeat(num_steps)
    return AnchorLayout(bounds, level)


def sliding_layout(num_steps: int, sizes: tuple[int, ...], strides: tuple[int, ...],
                   device=None) -> AnchorLayout:
    """Windows ``(j s, j s + k - 1)`` for ``j = 0 .. floor((T - k) / s)`` of every size ``k``,
    concatenated size by size (the order of :class:`SlidingWindowHead`'s outputs). A size
    larger than the sequence contributes no window."""
    bounds, level = [], []
    for i, (k, s) in enumerate(zip(sizes, strides)):
        if k > num_steps:
            continue
        start = torch.arange(0, num_steps - k + 1, s, device=device, dtype=torch.float32)
        bounds.append(torch.stack([start, start + k - 1], -1))
        level.append(torch.full((start.shape[0],), i, device=device, dtype=torch.long))
    if not bounds:
        return AnchorLayout(torch.zeros(0, 2, device=device), torch.zeros(0, dtype=torch.long,
                                                                         device=device))
    return AnchorLayout(torch.cat(bounds), torch.cat(level))


def window_strides(sizes: tuple[int, ...], fraction: float, absolute: int = 0) -> tuple[int, ...]:
    """Stride of each window size: ``absolute`` when > 0, else ``floor(fraction * k)`` (>= 1)."""
    if absolute > 0:
        return tuple(absolute for _ in sizes)
    return tuple(max(1, int(fraction * k + _EPS)) for k in sizes)


def scaled_widths(kernels: tuple[int, ...], scale: float) -> tuple[float, ...]:
    """CSMGAN's anchor widths from its "kernel sizes" ``w`` and "stride" ``ρ``:
    ``w' = 2 ρ (w - 1) + 1`` steps (the authors' reading, csmgan spec A10)."""
    return tuple(2 * scale * (w - 1) + 1 for w in kernels)


class CenteredAnchorHead(nn.Module):
    """Scores and offsets of ``NΦ`` centred anchors from the feature at each step (CSMGAN
    eqs. 15-16): ``Conv1d(d, NΦ, 1)`` and ``Conv1d(d, 2 NΦ, 1)``.

    Forward: feats ``(B, T, d)``. Returns logits ``(B, T NΦ)`` and offsets ``(B, T NΦ, 2)``
    in :func:`centered_layout` order.
    """

    def __init__(self, in_dim: int, widths: tuple[float, ...]):
        super().__init__()
        self.widths = tuple(float(w) for w in widths)
        self.score = nn.Linear(in_dim, len(widths))        # a kernel-1 Conv1d over time
        self.offset = nn.Linear(in_dim, 2 * len(widths))

    def layout(self, num_steps: int, device=None) -> AnchorLayout:
        return centered_layout(num_steps, self.widths, device)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, t, _ = feats.shape
        logits = self.score(feats).reshape(bsz, -1)
        offsets = self.offset(feats).reshape(bsz, t * len(self.widths), 2)
        return logits, offsets


class EndingAnchorHead(nn.Module):
    """TGN-style scores of anchors ending at each step, from the feature at that step; no
    regression (offsets are None).

    Forward: feats ``(B, T, d)``. Returns logits ``(B, T K)`` and None.
    """

    def __init__(self, in_dim: int, lengths: tuple[int, ...]):
        super().__init__()
        self.lengths = tuple(int(v) for v in lengths)
        self.score = nn.Linear(in_dim, len(lengths))

    def layout(self, num_steps: int, device=None) -> AnchorLayout:
        return ending_layout(num_steps, self.lengths, device)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.score(feats).reshape(feats.shape[0], -1), None


class SlidingWindowHead(nn.Module):
    """FIAN's content-oriented localizer (sec. 3.4): for each window size ``k`` with stride
    ``s``, ``Conv1d(d, 1, k, s)`` scores and ``Conv1d(d, 2, k, s)`` offsets every window from
    all the features inside it. The two are held as one ``Conv1d(d, 3, k, s)`` (three
    independent filters, the same parameters). No padding: windows never leave the sequence.

    Forward: feats ``(B, T, d)``. Returns logits ``(B, K)`` and offsets ``(B, K, 2)`` in
    :func:`sliding_layout` order; sizes larger than ``T`` are skipped.
    """

    def __init__(self, in_dim: int, sizes: tuple[int, ...], strides: tuple[int, ...]):
        super().__init__()
        if len(sizes) != len(strides):
            raise ValueError(f"{len(sizes)} window sizes but {len(strides)} strides")
        self.sizes = tuple(int(k) for k in sizes)
        self.strides = tuple(int(s) for s in strides)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, 3, k, stride=s)
                                   for k, s in zip(self.sizes, self.strides))

    def layout(self, num_steps: int, device=None) -> AnchorLayout:
        return sliding_layout(num_steps, self.sizes, self.strides, device)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = feats.transpose(1, 2)                                           # (B, d, T)
        outs = [conv(x) for k, conv in zip(self.sizes, self.convs) if k <= x.shape[-1]]
        if not outs:
            empty = feats.new_zeros(feats.shape[0], 0)
            return empty, feats.new_zeros(feats.shape[0], 0, 2)
        y = torch.cat(outs, dim=-1)                                         # (B, 3, K)
        return y[:, 0], y[:, 1:].transpose(1, 2)


def anchor_candidates(layout: AnchorLayout, logits: torch.Tensor, offsets: torch.Tensor | None,
                      video_mask: torch.Tensor, durations: torch.Tensor,
                      legal: torch.Tensor | None = None) -> Candidates:
    """Scored, refined candidates in seconds for the engine's NMS.

    Scores are ``sigmoid(logits)``. Illegal anchors (outside the video) are invalid, except
    in a video too short for any legal anchor, where every anchor centred inside the video
    stays valid (clipped to it) so that the video still gets a prediction. ``legal``
    overrides ``layout.legal`` (a model with its own rule). ``steps`` holds the refined
    anchors on the step grid, unclipped.
    """
    from momentloc.models.base import Candidates

    lengths = video_mask.sum(1)
    legal = layout.legal(lengths) if legal is None else legal
    centre = layout.bounds.mean(-1)[None, :]                                # (1, K)
    centred_inside = (centre >= 0) & (centre < lengths[:, None].to(centre.dtype))
    valid = legal | (~legal.any(1, keepdim=True) & centred_inside)
    spans = layout.decode(offsets, durations, lengths)
    steps = layout.bounds[None] if offsets is None else layout.bounds[None] + offsets
    return Candidates(spans=spans, scores=torch.sigmoid(logits), valid=valid,
                      steps=steps.expand(logits.shape[0], -1, -1))
