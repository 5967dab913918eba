"""2D-TAN: 2D temporal adjacent networks (Zhang et al., AAAI 2020; common spec 8.2).

Pipeline (steps of common spec 8.2):

1. clips ``X (B, C, N)``: :class:`FrameAvgPool` of the (L2-normalized) input steps;
2. moment map ``F_M (B, C, N, N)``: max-pool (or conv) hierarchy over the sampled cells;
3. sentence ``f_s (B, C)``: 3-layer LSTM, state at the last real word, Linear;
4. fusion: ``normalize_C(f_s * Conv2d_1x1(F_M)) * mask``;
5. temporal adjacent network: L mask-aware ``Conv2d(C, C, K)`` + ReLU;
6. prediction: ``Conv2d(C, 1, 1)``, sigmoid, masked;
7. loss: scaled-IoU BCE over the valid cells.

LGN reuses the stages: :meth:`TAN2D.encode_query`, :meth:`TAN2D.encode_clips` and the
conv-stack hook :meth:`TAN2D.map_hook` are the places it changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from momentloc.config.schema import ModelConfig
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.heads.map2d import (
    ConvMomentMap,
    LayerHook,
    MapFusion,
    MaskedConvStack,
    PoolMomentMap,
    cell_spans,
    clip_layout,
    iou_map,
    map_candidates,
    map_mask,
    valid_cells,
)
from momentloc.losses.scaled_iou import bce_rescale_loss
from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.layers import FrameAvgPool, RNNEncoder
from momentloc.models.layers.dropout import Dropout
from momentloc.models.registry import register_model


@dataclass(frozen=True)
class TAN2DConfig(ModelConfig):
    """2D-TAN hyperparameters (defaults: the Charades-STA setting of the release [gk]).

    Attributes:
        hidden_dim: C, width of clips, moments and the map convs (512).
        num_clips: N, the map size (16 / 64 / 128). ``data.num_clips`` (the input steps,
            256 in the presets) must be a multiple of it.
        pool_kernel: input steps averaged into one map clip; 0 derives
            ``data.num_clips // num_clips``, any other value must equal it.
        scale_layers: layers per scale of the sparse map (``[16, 8, 8]`` for N = 64);
            ``None`` samples every cell a <= b.
        proposal: moment features by ``pool`` (max over the clips) or ``conv`` (stacked Conv1d).
        kernel_size / num_layers: K and L of the temporal adjacent network.
        lstm_layers / lstm_hidden: the sentence LSTM (unidirectional).
        tmin / tmax: IoU rescaling bounds of the loss.
        dropout: between LSTM layers and on the pooled clip features (0 in 2D-TAN).
        iou_float64: compute the IoU targets in float64 from the float32 cell and ground-truth
            times and round once to float32, as the release makes its ``map_gt`` (the release
            presets); False computes them in float32 (up to one ulp apart; the setting the
            synthetic results were measured with).
    """

    hidden_dim: int = 512
    num_clips: int = 16
    pool_kernel: int = 0
    scale_layers: tuple[int, ...] | None = None
    proposal: Literal["pool", "conv"] = "pool"
    kernel_size: int = 5
    num_layers: int = 8
    lstm_layers: int = 3
    lstm_hidden: int = 512
    tmin: float = 0.5
    tmax: float = 1.0
    dropout: float = 0.0
    iou_float64: bool = False

    def __post_init__(self):
        if not self.tmax > self.tmin:
            raise ValueError(f"tmax ({self.tmax}) must be larger than tmin ({self.tmin})")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        for name in ("hidden_dim", "num_clips", "lstm_layers", "lstm_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pool_kernel < 0 or self.num_layers < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("pool_kernel and num_layers must be >= 0 and dropout in [0, 1)")

    def input_kernel(self, input_steps: int) -> int:
        """The FrameAvgPool kernel for ``input_steps`` (= data.num_clips) input steps."""
        if input_steps % self.num_clips:
            raise ConfigError(f"data.num_clips={input_steps} is not a multiple of the map size "
                              f"model.num_clips={self.num_clips}")
        kernel = input_steps // self.num_clips
        if self.pool_kernel and self.pool_kernel != kernel:
            raise ConfigError(f"model.pool_kernel={self.pool_kernel} does not turn "
                              f"data.num_clips={input_steps} into model.num_clips={self.num_clips}")
        return kernel


class SentenceEncoder(nn.Module):
    """Unidirectional LSTM over the word vectors, state at the last real word, then Linear
    (common spec 8.2 step 3): ``(B, L, Dw)``, ``(B, L)`` -> ``f_s (B, out_dim)``."""

    def __init__(self, word_dim: int, lstm_hidden: int, out_dim: int, num_layers: int,
                 dropout: float = 0.0):
        super().__init__()
        self.rnn = RNNEncoder(word_dim, lstm_hidden, cell="lstm", bidirectional=False,
                              num_layers=num_layers, dropout=dropout)
        self.proj = nn.Linear(lstm_hidden, out_dim)

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, last = self.rnn(words, mask)
        return self.proj(last)


class TAN2D(GroundingModel):
    """2D-TAN over a ``num_clips x num_clips`` map.

    ``forward`` returns ``logits (B, N, N)``, ``scores (B, N, N)`` (sigmoid, 0 off the
    valid cells), ``map_mask (B, N, N)`` bool and ``clip_mask (B, N)`` bool.
    """

    def __init__(self, *, video_dim: int, word_dim: int, hidden_dim: int, num_clips: int,
                 pool_kernel: int, scale_layers: Sequence[int] | None, proposal: str,
                 kernel_size: int, num_layers: int, lstm_layers: int, lstm_hidden: int,
                 tmin: float, tmax: float, dropout: float = 0.0, iou_float64: bool = False):
        super().__init__()
        self.num_clips = num_clips
        self.tmin, self.tmax = tmin, tmax
        self.iou_float64 = iou_float64
        self.frame = FrameAvgPool(video_dim, hidden_dim, pool_kernel)
        self.clip_dropout = Dropout(dropout)
        if proposal == "pool":
            self.moment_map: nn.Module = PoolMomentMap(num_clips, scale_layers)
        elif proposal == "conv":
            self.moment_map = ConvMomentMap(hidden_dim, num_clips, scale_layers)
        else:
            raise ValueError(f"unknown proposal {proposal!r} (pool, conv)")
        self.sentence = SentenceEncoder(word_dim, lstm_hidden, hidden_dim, lstm_layers, dropout)
        self.fusion = MapFusion(hidden_dim)
        self.map_conv = MaskedConvStack(hidden_dim, kernel_size, num_layers)
        self.predictor = nn.Conv2d(hidden_dim, 1, kernel_size=1)
        self.register_buffer("cells", valid_cells(num_clips, scale_layers), persistent=False)

    @classmethod
    def from_config(cls, cfg: TAN2DConfig, ctx: ModelContext) -> TAN2D:
        return cls(video_dim=ctx.video_dim, word_dim=ctx.word_dim, hidden_dim=cfg.hidden_dim,
                   num_clips=cfg.num_clips, pool_kernel=cfg.input_kernel(ctx.num_clips),
                   scale_layers=cfg.scale_layers, proposal=cfg.proposal,
                   kernel_size=cfg.kernel_size, num_layers=cfg.num_layers,
                   lstm_layers=cfg.lstm_layers, lstm_hidden=cfg.lstm_hidden, tmin=cfg.tmin,
                   tmax=cfg.tmax, dropout=cfg.dropout, iou_float64=cfg.iou_float64)

    # Stages LGN overrides or reuses.
    def encode_query(self, batch: Batch) -> torch.Tensor:
        """Sentence vector ``f_s (B, C)``."""
        return self.sentence(batch.query_feats, batch.query_mask)

    def encode_clips(self, batch: Batch, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map clips ``(B, C, N)`` and their mask ``(B, N)`` (``query`` is unused here)."""
        clips, clip_mask = self.frame(batch.video_feats, batch.video_mask)
        return self.clip_dropout(clips), clip_mask

    def map_hook(self, query: torch.Tensor) -> LayerHook | None:
        """Per-layer hook of the temporal adjacent network (none in 2D-TAN)."""
        return None

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        query = self.encode_query(batch)                                 # (B, C)
        clips, clip_mask = self.encode_clips(batch, query)               # (B, C, N), (B, N)
        mask = map_mask(self.cells, clip_mask)                           # (B, N, N)
        fused = self.fusion(self.moment_map(clips), query, mask)         # (B, C, N, N)
        hidden = self.map_conv(fused, mask, hook=self.map_hook(query))
        logits = self.predictor(hidden)[:, 0]                            # (B, N, N)
        scores = torch.sigmoid(logits) * mask.to(logits.dtype)
        return {"logits": logits, "scores": scores, "map_mask": mask, "clip_mask": clip_mask}

    def _cell_spans(self, batch: Batch) -> torch.Tensor:
        bounds, _ = clip_layout(batch.durations, self.num_clips, batch.video_mask)
        return cell_spans(bounds)                                         # (B, N, N, 2)

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        ious = iou_map(self._cell_spans(batch), batch.spans, float64=self.iou_float64)
        return {"scaled_iou": bce_rescale_loss(outputs["logits"], ious, outputs["map_mask"],
                                               self.tmin, self.tmax)}

    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        return map_candidates(outputs["scores"], self._cell_spans(batch), outputs["map_mask"],
                              self.cells)

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"score_map": outputs["scores"]}


@register_model("tan2d", TAN2DConfig)
def build_tan2d(cfg: TAN2DConfig, ctx: ModelContext) -> TAN2D:
    return TAN2D.from_config(cfg, ctx)
