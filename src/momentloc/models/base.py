"""The contract every model meets, so that the engine holds no model names."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from momentloc.data.batch import Batch


@dataclass(frozen=True)
class ModelContext:
    """What a model needs to know about its data to be built.

    Attributes:
        video_dim: clip feature dimension after PCA (Dv).
        word_dim: word vector dimension (Dw).
        num_clips: clips per video (T).
        max_query_len: words per query at most (L).
        vocab_size: vocabulary size including the padding (0) and unknown (1) ids.
        word_vectors: ``(vocab_size, Dw)`` vectors of the vocabulary, for models that embed
            ``query_ids`` themselves (e.g. a fine-tuned embedding); ``None`` when unknown.
    """

    video_dim: int
    word_dim: int
    num_clips: int
    max_query_len: int
    vocab_size: int = 2
    word_vectors: torch.Tensor | None = None


@dataclass
class Candidates:
    """Ranked candidate moments for a batch, before NMS.

    Attributes:
        spans: ``(B, K, 2)`` (start, end) in seconds, 0 <= start <= end <= duration.
        scores: ``(B, K)`` higher is better.
        valid: ``(B, K)`` bool; False on padding or illegal candidates.
        steps: optional ``(B, K, 2)`` the same candidates as refined on the model's step grid
            (inclusive, unclipped, possibly reversed), for protocols that score them there
            (``eval.protocol: cmin``).
    """

    spans: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    steps: torch.Tensor | None = None


class GroundingModel(nn.Module):
    """Base class of every registered model.

    Subclasses implement :meth:`forward`, :meth:`loss` and :meth:`candidates`. The engine
    weights the loss terms from ``cfg.loss_weights``, runs NMS and computes metrics.
    """

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """Named, unweighted scalar loss terms."""
        raise NotImplementedError  # pragma: no cover

    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        """Scored candidate moments in seconds (a regression model returns K = 1)."""
        raise NotImplementedError  # pragma: no cover

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Attention weights the model exposes for figures (names -> tensors); default none."""
        return {}

    def on_epoch_start(self, epoch: int) -> None:
        """Hook called by the trainer before each epoch (no-op by default)."""
