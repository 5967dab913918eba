"""CI-MHA: self-attention on each modality, cross interaction multi-head attention in both
directions, and multi-task start/end + moment segmentation heads.

Equations cite the CI-MHA paper (``shared/papers/cimha.txt``); ``docs/models/cimha.md`` maps
each one to this file and records every choice made where the paper is ambiguous (the
spec's A1-A12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.config.schema import ModelConfig
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.heads.boundary import (
    SegmentationHead,
    StartEndHead,
    boundary_targets,
    index_spans_to_seconds,
    masked_log_softmax,
    pair_scores,
    top_pairs,
)
from momentloc.losses.boundary import boundary_nll, segmentation_bce
from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.layers import (
    MLP,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    RNNEncoder,
    masked_mean,
)
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.transformer import AttentionBlock
from momentloc.models.registry import register_model


@dataclass(frozen=True)
class CIMHAConfig(ModelConfig):
    """CI-MHA hyperparameters and ablation switches (spec ``cimha.md`` sections 5-6).

    Attributes:
        dim: shared fusion width D (eqs. 5-6).
        query_dim: output width of the query BiLSTM (512 in the paper, half per direction).
        num_heads: heads of the query self-attention and of every cross attention.
        video_heads: heads of the video self-attention (eq. 4), which runs at the feature
            width (e.g. 4 or 5 for 500-d C3D, which 8 does not divide).
        project_video_first: project the video features to ``dim`` before eq. 4 (then
            ``video_heads`` divides ``dim``).
        lstm_dim: output width of each start/end BiLSTM (half per direction).
        mlp_hidden: hidden width of the start/end and segmentation MLPs.
        dropout: after the feed-forward projections, on the fused sequence and in the MLPs.
        ci_mode: how eqs. 7-9 are made shape-consistent (spec A1): ``literal_aligned`` keeps
            eq. 7 (words gather frames) and adds one frame-over-words hop; ``swap`` reads eq. 7
            as frames gathering words; ``pool_broadcast`` pools eq. 7's word-wise output and
            tiles it over time.
        ci_q_source: keys/values of eq. 8: ``q_hat`` (after FF) or the printed ``q``.
        ci_residual: residual + LayerNorm on each cross attention (ViLBERT style; not in
            the paper).
        ci_streams: ``both`` (CI-MHA, eq. 9) or ``vq_only`` (the uni-directional "MHA" row).
        use_seg: train the moment segmentation head (off = the "w/o MS" row).
        pe_before_self_attn: also add a learned position table to the raw video (spec A5).
        infer_use_seg: multiply each pair's score by the geometric mean of ``P_in`` over it
            (not in the paper; needs ``use_seg``).
        max_moment_clips: longest decoded moment in steps (0 = any).
        num_candidates: ranked (start <= end) pairs returned per query before NMS.
    """

    dim: int = 512
    query_dim: int = 512
    num_heads: int = 8
    video_heads: int = 8
    project_video_first: bool = False
    lstm_dim: int = 512
    mlp_hidden: int = 512
    dropout: float = 0.1
    ci_mode: Literal["literal_aligned", "swap", "pool_broadcast"] = "literal_aligned"
    ci_q_source: Literal["q_hat", "q"] = "q_hat"
    ci_residual: bool = False
    ci_streams: Literal["both", "vq_only"] = "both"
    use_seg: bool = True
    pe_before_self_attn: bool = False
    infer_use_seg: bool = False
    max_moment_clips: int = 0
    num_candidates: int = 20

    def __post_init__(self):
        for name in ("dim", "query_dim", "num_heads", "video_heads", "lstm_dim", "mlp_hidden",
                     "num_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads or self.query_dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) and query_dim ({self.query_dim}) must divide by "
                             f"num_heads ({self.num_heads})")
        if self.query_dim % 2 or self.lstm_dim % 2:
            raise ValueError("query_dim and lstm_dim are BiLSTM outputs and must be even")
        if self.infer_use_seg and not self.use_seg:
            raise ValueError("infer_use_seg needs use_seg (the segmentation head)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class _Cross(nn.Module):
    """One cross attention of the CI module: plain MHA (the paper) or residual + LayerNorm."""

    def __init__(self, dim: int, heads: int, context_dim: int, residual: bool, dropout: float):
        super().__init__()
        if residual:
            self.block = AttentionBlock(dim, heads, dropout=dropout, norm=True,
                                        context_dim=context_dim)
        else:
            self.block = MultiHeadAttention(dim, heads, key_dim=context_dim, dropout=dropout)
        self.residual = residual

    def forward(self, x, context, x_mask, context_mask):
        if self.residual:
            return self.block(x, context, x_mask=x_mask, context_mask=context_mask)
        return self.block(x, context, key_mask=context_mask, query_mask=x_mask)


class CIMHA(GroundingModel):
    """CI-MHA (see the module docstring).

    ``forward`` returns ``start_logp`` / ``end_logp`` ``(B, T)`` (log-softmax over real steps,
    eq. 14), ``seg_logits`` ``(B, T)`` when the segmentation head exists (eq. 15), and the
    cross attention weights ``attn_eq7`` (``(B, h, L, T)``, or ``(B, h, T, L)`` in ``swap``
    mode), ``attn_align`` ``(B, h, T, L)`` (``literal_aligned``) and ``attn_eq8``
    ``(B, h, T, L)`` (both streams).
    """

    def __init__(self, cfg: CIMHAConfig, ctx: ModelContext):
        super().__init__()
        self.cfg = cfg
        d, dq, p = cfg.dim, cfg.query_dim, cfg.dropout
        vdim = d if cfg.project_video_first else ctx.video_dim
        if vdim % cfg.video_heads:
            raise ConfigError(
                f"cimha: the video self-attention runs at width {vdim}, which {cfg.video_heads} "
                f"heads do not divide; set model.video_heads (e.g. 4 or 5 for 500-d C3D) or "
                f"model.project_video_first=true")
        self.video_in = nn.Linear(ctx.video_dim, d) if cfg.project_video_first else nn.Identity()
        self.raw_pe = (LearnedPositionalEncoding(vdim, ctx.num_clips)
                       if cfg.pe_before_self_attn else None)
        self.query_enc = RNNEncoder(ctx.word_dim, dq, cell="lstm")                 # eq. 2
        self.video_self = AttentionBlock(vdim, cfg.video_heads, dropout=p, norm=False)   # eq. 4
        self.query_self = AttentionBlock(dq, cfg.num_heads, dropout=p, norm=False)       # eq. 3
        self.video_ff = nn.Sequential(MLP([vdim, d, d]), Dropout(p))               # eq. 5
        self.query_ff = nn.Sequential(MLP([dq, d, d]), Dropout(p))                 # eq. 6
        self.pe = LearnedPositionalEncoding(d, ctx.num_clips)                      # eq. 5 (BERT)
        q8 = d if cfg.ci_q_source == "q_hat" else dq
        self.cross7 = _Cross(d, cfg.num_heads, d, cfg.ci_residual, p)              # eq. 7
        self.align = (_Cross(d, cfg.num_heads, d, cfg.ci_residual, p)
                      if cfg.ci_mode == "literal_aligned" else None)
        self.cross8 = (_Cross(d, cfg.num_heads, q8, cfg.ci_residual, p)             # eq. 8
                       if cfg.ci_streams == "both" else None)
        fused = 2 * d if cfg.ci_streams == "both" else d                          # eq. 9
        self.fused_drop = Dropout(p)
        self.start_end = StartEndHead(fused, cfg.lstm_dim, cfg.mlp_hidden, p)      # eqs. 10-13
        self.segment = SegmentationHead(fused, cfg.mlp_hidden, p) if cfg.use_seg else None

    def fuse(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eqs. 1-9: the fused per-step sequence ``s (B, T, 2D or D)`` and attention weights."""
        cfg = self.cfg
        vm, qm = batch.video_mask, batch.query_mask
        v0 = self.video_in(batch.video_feats) * vm[..., None].to(batch.video_feats.dtype)
        if self.raw_pe is not None:
            v0 = self.raw_pe(v0)
        q0, _ = self.query_enc(batch.query_feats, qm)
        q, _ = self.query_self(q0, x_mask=qm)                                      # eq. 3
        v, _ = self.video_self(v0, x_mask=vm)                                      # eq. 4
        v_hat = self.pe(self.video_ff(v)) * vm[..., None].to(v.dtype)              # eq. 5
        q_hat = self.query_ff(q) * qm[..., None].to(q.dtype)                       # eq. 6
        maps = {}
        if cfg.ci_mode == "swap":
            v_q, maps["attn_eq7"] = self.cross7(v_hat, q_hat, vm, qm)
        else:
            # eq. 7 as printed: each word gathers the video -> (B, L, D).
            v_q_w, maps["attn_eq7"] = self.cross7(q_hat, v_hat, qm, vm)
            if cfg.ci_mode == "literal_aligned":
                # added hop (spec A1): each frame gathers the word-wise video summaries.
                v_q, maps["attn_align"] = self.align(v_hat, v_q_w, vm, qm)
            else:  # pool_broadcast
                v_q = masked_mean(v_q_w, qm, dim=1)[:, None, :].expand_as(v_hat)
                v_q = v_q * vm[..., None].to(v_q.dtype)
        if self.cross8 is None:
            s = v_q
        else:
            q_src = q_hat if cfg.ci_q_source == "q_hat" else q
            q_v, maps["attn_eq8"] = self.cross8(v_hat, q_src, vm, qm)       # eq. 8
            s = torch.cat([v_q, q_v], dim=-1)                                      # eq. 9
        return self.fused_drop(s), maps

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        s, maps = self.fuse(batch)
        vm = batch.video_mask
        c_start, c_end = self.start_end(s, vm)
        out = {"start_logp": masked_log_softmax(c_start, vm),                      # eq. 14
               "end_logp": masked_log_softmax(c_end, vm), **maps}
        if self.segment is not None:
            out["seg_logits"] = self.segment(s)                                    # eq. 15
        return out

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        start, end, inside = boundary_targets(batch.spans, batch.durations, batch.video_mask)
        terms = {"start": boundary_nll(outputs["start_logp"], start),
                 "end": boundary_nll(outputs["end_logp"], end)}
        if self.segment is not None:
            terms["seg"] = segmentation_bce(outputs["seg_logits"], inside, batch.video_mask)
        return terms

    @torch.no_grad()
    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        """The ``num_candidates`` most likely ``(start <= end)`` pairs by joint probability
        ``P_start[i] P_end[j]`` (spec A11), best first, in seconds."""
        log_inside = (F.logsigmoid(outputs["seg_logits"]) if self.cfg.infer_use_seg else None)
        scores = pair_scores(outputs["start_logp"], outputs["end_logp"], batch.video_mask,
                             self.cfg.max_moment_clips, log_inside)
        idx, top, valid = top_pairs(scores, self.cfg.num_candidates)
        spans = index_spans_to_seconds(idx, batch.durations, batch.video_mask)
        return Candidates(spans=spans, scores=torch.where(valid, top.exp(), 0.0), valid=valid)

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in outputs.items() if k.startswith("attn_")}


@register_model("cimha", CIMHAConfig)
def build_cimha(cfg: CIMHAConfig, ctx: ModelContext) -> CIMHA:
    return CIMHA(cfg, ctx)
