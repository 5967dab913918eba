"""CMA: coarse-to-fine cross-modality attention (guided encoder, two-branch decoder) with
attention-pooled regression of the normalized (start, end) and a task-specific loss.

Equations cite the CMA paper (``shared/papers/cma.txt``), written here with rows
(``[N, d]``) instead of the paper's columns. ``docs/models/cma.md`` maps each one to this
file and records every choice made where the paper is ambiguous (the spec's A1-A16).
CMA regresses a single moment: :meth:`CMA.candidates` returns K = 1, so its R@5 equals R@1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from momentloc.config.schema import ModelConfig
from momentloc.data.batch import Batch
from momentloc.heads.regression import (
    AttentionPooling,
    BoundaryRegressor,
    inside_clips,
    normalized_targets,
    normalized_to_seconds,
)
from momentloc.losses.regression import (
    boundary_regression,
    diversity_loss,
    temporal_attention_loss,
)
from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.layers import (
    MLP,
    LearnedPositionalEncoding,
    RNNEncoder,
    SinusoidalPositionalEncoding,
    masked_softmax,
)
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.transformer import AttentionBlock
from momentloc.models.registry import register_model


@dataclass(frozen=True)
class CMAConfig(ModelConfig):
    """CMA hyperparameters and ablation switches (spec ``cma.md`` sections 5-6).

    Attributes:
        dim: model width d, also the query BiLSTM's output (d = d_q, spec A2).
        query_layers: layers of the query BiLSTM (2 in the paper).
        num_heads: heads of every attention block (4). enc_layers / dec_layers: stacked
            encoder layers and decoder layers (2 each). ffn_dim: Transformer FFN width.
        dropout: on the embeddings and inside every block.
        pe: ``sincos`` (eqs. 27-28), ``learned`` (one table per modality) or ``none``.
        fusion: encoder fusion f_u of video and guide: ``hadamard``, ``add`` or ``concat``
            (concatenation projected back to d).
        guides: ``global`` (the "Ours" model: s_global is the one guide, eq. 12) or ``spe``
            (the "Ours+" model: ``num_guides`` phrase vectors, eqs. 7-8, 9-11).
        num_guides: k phrases. spe_hidden: d_s of the SPE attention.
        use_encoder / use_decoder: the structure ablation (Table 3).
        reg_loss: ``task`` (eq. 24 with ``alpha``, ``beta``) or ``smooth_l1`` (eq. 23).
    """

    dim: int = 512
    query_layers: int = 2
    num_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    ffn_dim: int = 2048
    dropout: float = 0.1
    pe: Literal["sincos", "learned", "none"] = "sincos"
    fusion: Literal["hadamard", "add", "concat"] = "hadamard"
    guides: Literal["global", "spe"] = "global"
    num_guides: int = 3
    spe_hidden: int = 256
    use_encoder: bool = True
    use_decoder: bool = True
    reg_loss: Literal["task", "smooth_l1"] = "task"
    alpha: float = 10.0
    beta: float = 0.1

    def __post_init__(self):
        for name in ("dim", "query_layers", "num_heads", "enc_layers", "dec_layers", "num_guides",
                     "spe_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads or self.dim % 2:
            raise ValueError(f"dim ({self.dim}) must be even and divide by num_heads "
                             f"({self.num_heads})")
        if not (self.use_encoder or self.use_decoder):
            raise ValueError("use_encoder and use_decoder cannot both be false: the query "
                             "would not reach the grounding head")
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"alpha and beta must be positive, got {self.alpha}, {self.beta}")
        if self.ffn_dim < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("ffn_dim must be >= 0 and dropout in [0, 1)")


def _positional(kind: str, dim: int, max_len: int) -> nn.Module:
    if kind == "sincos":
        return SinusoidalPositionalEncoding(dim)
    if kind == "learned":
        return LearnedPositionalEncoding(dim, max_len)
    return nn.Identity()


class SemanticPhraseExtractor(nn.Module):
    """SPE (eqs. 7-8; structured self-attention of Lin et al. 2017).

    ``A = softmax_words(tanh(Q W_s1) W_s2)^T`` ``(B, k, L)`` with padded words masked, and
    ``G = A Q`` ``(B, k, d)``: k guide vectors.
    """

    def __init__(self, dim: int, hidden: int, num_guides: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, num_guides, bias=False)

    def forward(self, q: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.w2(torch.tanh(self.w1(q)))                                 # (B, L, k)
        attn = masked_softmax(logits, mask[..., None], dim=1).transpose(1, 2)    # (B, k, L)
        return attn @ q, attn


class CMA(GroundingModel):
    """CMA (see the module docstring).

    ``forward`` returns ``pred`` ``(B, 2)`` normalized (start, end) (eq. 20), ``temporal_attn``
    ``(B, T)`` (eq. 18), and, with SPE, ``phrase_attn`` ``(B, k, L)`` (eq. 7); the last
    decoder layer's video bi-attention weights are ``attn_video_query`` ``(B, h, T, L)``, and
    ``attn_query_video`` ``(B, h, L, T)`` is the query bi-attention of the last layer that
    has one (the final layer's would feed nothing and is not built).
    """

    def __init__(self, cfg: CMAConfig, ctx: ModelContext):
        super().__init__()
        self.cfg = cfg
        d, p, h = cfg.dim, cfg.dropout, cfg.num_heads
        self.video_proj = nn.Linear(ctx.video_dim, d)                            # W_v, eq. 2
        self.video_pe = _positional(cfg.pe, d, ctx.num_clips)
        self.query_enc = RNNEncoder(ctx.word_dim, d, cell="lstm", num_layers=cfg.query_layers,
                                    dropout=p)                                  # eqs. 3-4
        self.query_pe = _positional(cfg.pe, d, ctx.max_query_len)                # eq. 5
        self.drop = Dropout(p)
        self.spe = (SemanticPhraseExtractor(d, cfg.spe_hidden, cfg.num_guides)
                    if cfg.use_encoder and cfg.guides == "spe" else None)
        if cfg.use_encoder:
            self.concat_proj = nn.Linear(2 * d, d) if cfg.fusion == "concat" else None
            self.encoder = nn.ModuleList(AttentionBlock(d, h, cfg.ffn_dim, p)
                                         for _ in range(cfg.enc_layers))        # eq. 10
            self.merge = (MLP([cfg.num_guides * d, d], final_activation=True)
                          if self.spe is not None else None)                    # eq. 11
        if cfg.use_decoder:
            # The last layer's query bi-attention (eq. 15) would feed nothing: only the video
            # branch reaches the grounding head, so that block is not built (spec A1).
            self.decoder = nn.ModuleList(
                nn.ModuleDict({"sa_q": AttentionBlock(d, h, cfg.ffn_dim, p),     # eq. 13
                               "sa_v": AttentionBlock(d, h, cfg.ffn_dim, p),     # eq. 14
                               "ba_v": AttentionBlock(d, h, cfg.ffn_dim, p),     # eq. 16
                               **({"ba_q": AttentionBlock(d, h, cfg.ffn_dim, p)}  # eq. 15
                                  if i < cfg.dec_layers - 1 else {})})
                for i in range(cfg.dec_layers))
        self.pool = AttentionPooling(d)                                          # eqs. 17-19
        self.regressor = BoundaryRegressor(d, d, p)                              # eq. 20

    def _fuse(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """f_u(V_in, g): v ``(B, 1, T, d)``, g ``(B, k, 1, d)`` -> ``(B, k, T, d)`` (eqs. 9, 12)."""
        if self.cfg.fusion == "hadamard":
            return v * g
        if self.cfg.fusion == "add":
            return v + g
        v, g = torch.broadcast_tensors(v, g)
        return self.concat_proj(torch.cat([v, g], dim=-1))

    def encode(self, v_in: torch.Tensor, q_in: torch.Tensor, s_global: torch.Tensor,
               vm: torch.Tensor, qm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder (eqs. 9-12): the video fused with each guide, self-attended, merged."""
        if self.spe is not None:
            guides, phrase_attn = self.spe(q_in, qm)                             # (B, k, d)
        else:
            guides, phrase_attn = s_global[:, None, :], None                     # eq. 12
        bsz, k, d = guides.shape
        t = v_in.shape[1]
        f = self._fuse(v_in[:, None], guides[:, :, None]).reshape(bsz * k, t, d)
        mask = vm.repeat_interleave(k, dim=0)
        f = f * mask[..., None].to(f.dtype)
        for layer in self.encoder:                                               # eq. 10 (shared
            f, _ = layer(f, x_mask=mask)                                         # over guides)
        f = f.view(bsz, k, t, d)
        if self.merge is None:
            return f[:, 0], phrase_attn
        merged = self.merge(f.permute(0, 2, 1, 3).reshape(bsz, t, k * d))        # eq. 11
        return merged * vm[..., None].to(merged.dtype), phrase_attn

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        vm, qm = batch.video_mask, batch.query_mask
        vmf, qmf = vm[..., None].to(batch.video_feats.dtype), qm[..., None].to(batch.video_feats.dtype)
        v_in = self.drop(self.video_pe(torch.relu(self.video_proj(batch.video_feats)))) * vmf
        h, s_global = self.query_enc(batch.query_feats, qm)                      # eq. 6
        q_in = self.drop(self.query_pe(h)) * qmf
        out: dict[str, torch.Tensor] = {}
        if self.cfg.use_encoder:
            fv, phrase_attn = self.encode(v_in, q_in, s_global, vm, qm)
            if phrase_attn is not None:
                out["phrase_attn"] = phrase_attn
        else:
            fv = v_in                                                            # decoder-only
        if self.cfg.use_decoder:
            fq = q_in
            for layer in self.decoder:
                fq1, _ = layer["sa_q"](fq, x_mask=qm)                            # eq. 13
                fv1, _ = layer["sa_v"](fv, x_mask=vm)                            # eq. 14
                fv, out["attn_video_query"] = layer["ba_v"](fv1, fq1, vm, qm)    # eq. 16
                if "ba_q" in layer:
                    fq, out["attn_query_video"] = layer["ba_q"](fq1, fv1, qm, vm)  # eq. 15
        pooled, attn = self.pool(fv, vm)
        out["temporal_attn"] = attn
        out["pred"] = self.regressor(pooled)
        return out

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        target = normalized_targets(batch.spans, batch.durations)               # eq. 22
        terms = {
            "reg": boundary_regression(outputs["pred"], target, cfg.reg_loss, cfg.alpha, cfg.beta),
            "ta": temporal_attention_loss(outputs["temporal_attn"],                # eq. 25
                                          inside_clips(batch.spans, batch.durations, batch.video_mask)),
        }
        if "phrase_attn" in outputs:
            terms["sd"] = diversity_loss(outputs["phrase_attn"])                 # eq. 26
        return terms

    @torch.no_grad()
    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        """The one regressed moment (K = 1, score 1): there is no ranking to report."""
        spans = normalized_to_seconds(outputs["pred"], batch.durations)[:, None, :]
        ones = torch.ones(spans.shape[:2], device=spans.device)
        return Candidates(spans=spans, scores=ones, valid=ones.bool())

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keys = ("temporal_attn", "phrase_attn", "attn_query_video", "attn_video_query")
        return {k: outputs[k] for k in keys if k in outputs}


@register_model("cma", CMAConfig)
def build_cma(cfg: CMAConfig, ctx: ModelContext) -> CMA:
    return CMA(cfg, ctx)
