"""Boundary-classification heads: start/end distributions over time and moment segmentation.

The head owns its target encoding: spans in seconds become a start index, an end index and a
per-clip inside/outside label (common spec 3.1), and the decoder turns the two distributions
back into ranked ``(start <= end)`` spans in seconds with one upper-triangular ``(T, T)``
score matrix per video (no loop over pairs).

A video padded to ``T`` steps with ``M`` real ones (``data.resample: pad``) has its real steps
cover ``[0, duration)``, each ``duration / M`` long; the helpers below take the per-video
``M`` from ``video_mask``, so pooled (all real) and padded batches share one code path.
"""

from __future__ import annotations

import torch
from torch import nn

from momentloc.models.layers import MLP, RNNEncoder
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.masking import NEG
from momentloc.spans import indices_to_seconds, seconds_to_indices


def axis_duration(durations: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` seconds the whole padded axis of ``T`` steps would cover: ``duration * T / M``.

    With it, :func:`momentloc.spans.seconds_to_indices` and ``indices_to_seconds`` (which
    assume all ``T`` steps are real) map seconds to the real steps of a padded video.
    """
    t = video_mask.shape[1]
    real = video_mask.sum(1).clamp_min(1).to(durations.dtype)
    return durations * t / real


def boundary_targets(spans: torch.Tensor, durations: torch.Tensor, video_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start/end labels and segmentation labels of the ground-truth spans.

    Args:
        spans: ``(B, 2)`` seconds. durations: ``(B,)``. video_mask: ``(B, T)`` bool.
    Returns:
        ``start (B,)`` and ``end (B,)`` long inclusive indices (``start <= end < M``, common
        spec 3.1; the CI-MHA spec's A12), and ``inside (B, T)`` float, 1 on ``start..end``.
    """
    t = video_mask.shape[1]
    idx = seconds_to_indices(spans.float(), axis_duration(durations.float(), video_mask), t)
    last = (video_mask.sum(1) - 1).clamp_min(0)
    start = torch.minimum(idx[:, 0], last)
    end = torch.maximum(torch.minimum(idx[:, 1], last), start)
    steps = torch.arange(t, device=spans.device)
    inside = (steps[None] >= start[:, None]) & (steps[None] <= end[:, None]) & video_mask
    return start, end, inside.float()


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` log-softmax over time with padded steps left out (they get about -1e30)."""
    return torch.log_softmax(logits.masked_fill(~mask, NEG), dim=-1)


def pair_scores(log_start: torch.Tensor, log_end: torch.Tensor, mask: torch.Tensor,
                max_len: int = 0, log_inside: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, T, T)`` log-score of every span ``(i, j)``: ``log P_start[i] + log P_end[j]``.

    Entries with ``j < i``, a padded ``i`` or ``j``, or (``max_len > 0``) ``j - i >= max_len``
    are ``-inf``. With ``log_inside`` (``(B, T)`` log-probabilities that a step is inside the
    moment) the mean of ``log_inside`` over ``i..j`` is added: the score is multiplied by the
    geometric mean of ``P_in`` over the span (computed from a cumulative sum).
    """
    t = log_start.shape[1]
    scores = log_start[:, :, None] + log_end[:, None, :]
    steps = torch.arange(t, device=log_start.device)
    length = steps[None, :] - steps[:, None]                            # (T, T): j - i
    ok = (length >= 0)[None] & mask[:, :, None] & mask[:, None, :]
    if max_len > 0:
        ok = ok & (length < max_len)[None]
    if log_inside is not None:
        cum = torch.cat([log_inside.new_zeros(log_inside.shape[0], 1),
                         log_inside.masked_fill(~mask, 0.0).cumsum(1)], dim=1)   # (B, T+1)
        span_sum = cum[:, None, 1:] - cum[:, :-1, None]                          # sum over i..j
        scores = scores + span_sum / (length.clamp_min(0) + 1).to(scores.dtype)[None]
    return scores.masked_fill(~ok, float("-inf"))


def top_pairs(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best spans of a ``(B, T, T)`` score matrix from :func:`pair_scores`.

    Returns:
        ``index_spans (B, k, 2)`` long ``(i, j)``, ``scores (B, k)`` (``-inf`` where invalid)
        and ``valid (B, k)`` bool, best first. ``valid`` is False where a video has fewer
        than ``k`` legal spans.
    """
    bsz, t, _ = scores.shape
    flat = scores.reshape(bsz, t * t)
    kk = min(k, t * t)
    top, pos = flat.topk(kk, dim=1)
    idx = torch.stack([pos // t, pos % t], dim=-1)
    if kk < k:
        pad = k - kk
        top = torch.cat([top, top.new_full((bsz, pad), float("-inf"))], 1)
        idx = torch.cat([idx, idx.new_zeros(bsz, pad, 2)], 1)
    return idx, top, torch.isfinite(top)


def index_spans_to_seconds(index_spans: torch.Tensor, durations: torch.Tensor,
                           video_mask: torch.Tensor) -> torch.Tensor:
    """Inclusive step spans ``(B, K, 2)`` -> seconds ``(B, K, 2)`` within ``[0, duration]``."""
    t = video_mask.shape[1]
    out = indices_to_seconds(index_spans, axis_duration(durations.float(), video_mask)[:, None], t)
    return torch.minimum(out, durations.float()[:, None, None])


class StartEndHead(nn.Module):
    """Dependent start/end prediction (ExCL style; CI-MHA eqs. 10-13).

    ``Hs = BiLSTM_start(s)``, ``He = BiLSTM_end(Hs)`` (the end is conditioned on the start's
    hidden states at the same step), ``c_start[t] = MLP_start([Hs[t], s[t]])`` and
    ``c_end[t] = MLP_end([He[t], s[t]])`` (the skip connection by concatenation).

    Args:
        in_dim: width of the fused sequence ``s``. lstm_dim: output width of each BiLSTM
            (half per direction). hidden: MLP hidden width. dropout: in the MLPs.
    Forward:
        s ``(B, T, in_dim)``, mask ``(B, T)``.
    Returns:
        start and end logits ``(B, T)`` (not yet normalized over time).
    """

    def __init__(self, in_dim: int, lstm_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.start_rnn = RNNEncoder(in_dim, lstm_dim, cell="lstm")
        self.end_rnn = RNNEncoder(lstm_dim, lstm_dim, cell="lstm")
        self.start_mlp = self._mlp(lstm_dim + in_dim, hidden, dropout)
        self.end_mlp = self._mlp(lstm_dim + in_dim, hidden, dropout)

    @staticmethod
    def _mlp(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
        # No bias on the output: a softmax over time ignores a constant shift, so that bias
        # would never receive a gradient.
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), Dropout(dropout),
                             nn.Linear(hidden, 1, bias=False))

    def forward(self, s: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs, _ = self.start_rnn(s, mask)
        he, _ = self.end_rnn(hs, mask)
        c_start = self.start_mlp(torch.cat([hs, s], -1)).squeeze(-1)
        c_end = self.end_mlp(torch.cat([he, s], -1)).squeeze(-1)
        return c_start, c_end


class SegmentationHead(nn.Module):
    """Per-step moment segmentation logits (CI-MHA eq. 15): ``MLP_segment(s[t])``.

    ``P_in = sigmoid(logits)`` and ``P_out = 1 - P_in`` (eq. 16). Returns ``(B, T)`` logits.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.mlp = MLP([in_dim, hidden, 1], dropout=dropout)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(s).squeeze(-1)
