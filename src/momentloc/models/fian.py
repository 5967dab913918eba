"""FIAN: fine-grained iterative attention network (Qu et al., ACM MM 2020).

A BiGRU query encoder and a self-attention + BiGRU video encoder feed a symmetrical iterative
attention module: the query-video branch makes a video-aware query and then a video that
attends to it (eq. 9), the video-query branch the reverse (eq. 10). Each step is a
Transformer-like cross-modal encoder around cross-modal guided attention (multi-head
attention plus an information gate, eqs. 4-8). Video-enhanced integration maps the queries
from query length to video length and adds them to the videos through a sigmoid filter
(eqs. 11-14); a BiGRU and the content-oriented localizer (a Conv1d per window size whose
kernel covers the window) score and refine sliding windows. Equation mapping and choices:
``docs/models/fian.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from momentloc.config.schema import ModelConfig
from momentloc.data.batch import Batch
from momentloc.heads.anchors import (
    CenteredAnchorHead,
    EndingAnchorHead,
    SlidingWindowHead,
    anchor_candidates,
    window_strides,
)
from momentloc.losses.alignment import balanced_alignment_loss, offset_loss, weighted_anchor_bce
from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.layers.attention import MultiHeadAttention
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.masking import masked_softmax
from momentloc.models.layers.rnn import RNNEncoder
from momentloc.models.layers.video_encoder import SelfAttentionVideoEncoder
from momentloc.models.registry import register_model


@dataclass(frozen=True)
class FIANConfig(ModelConfig):
    """FIAN hyperparameters and ablation switches (paper defaults; Charades-STA windows).

    Attributes:
        hidden_dim: model width d_h (every BiGRU outputs d_h, d_h/2 per direction).
        num_heads: heads n of the cross-modal attention (8, or 4 on Charades-STA).
        ffn_dim / encoder_dropout: FFN width and dropout inside the cross-modal encoders.
        dropout: on the input features and after the BiGRUs.
        video_sa_layers / video_sa_heads / video_sa_window: video self-attention (window 0 =
            global).
        branches: ``both`` (eqs. 9-10), ``vq_iter`` (FIAN-VQMA), ``qv_iter`` (FIAN-QVMA) or
            ``vq_single`` (one V-Q encoder, no query output: FIAN-Soft/CMA/VQ).
        attn: attention inside the encoders: ``cga`` (eq. 6), ``cma`` (eq. 5, no gate) or
            ``soft`` (single-head dot product without projections).
        cga_tied: the gate and information projections of eq. 6 share weights (paper).
        share_branch_encoders: the two Q-V encoders share parameters, and the two V-Q.
        integration: ``filter`` (eqs. 11-14), ``concat`` ([V1; V2], FIAN-Concat) or
            ``matrix`` ([V1; V2; V1 - V2; V1 * V2], FIAN-Matrix).
        integration_align: ``linear`` (eq. 11, a learned map from query slots to video
            slots) or ``attention`` (each step attends to the query; not in the paper).
        localizer: ``content`` (sec. 3.4), ``cmin`` (centred anchors, point features) or
            ``tgn`` (anchors ending at each step, weighted BCE, no regression).
        window_sizes: window (kernel) sizes θ_k; also the anchor widths of ``cmin``/``tgn``.
        window_stride: stride θ_s as a fraction of each size (floor, at least 1).
        window_stride_abs: a stride in steps for every size (> 0 overrides the fraction).
        tau: IoU above which a window is positive (eqs. 16-17).
        tgn_threshold: IoU above which a ``tgn`` anchor is labelled 1.
    """

    loss_weights: dict[str, float] = field(default_factory=lambda: {"boundary": 0.005})
    hidden_dim: int = 512
    num_heads: int = 4
    ffn_dim: int = 2048
    dropout: float = 0.2
    encoder_dropout: float = 0.1
    video_sa_layers: int = 1
    video_sa_heads: int = 4
    video_sa_window: int = 0
    branches: Literal["both", "vq_iter", "qv_iter", "vq_single"] = "both"
    attn: Literal["cga", "cma", "soft"] = "cga"
    cga_tied: bool = True
    share_branch_encoders: bool = False
    integration: Literal["filter", "concat", "matrix"] = "filter"
    integration_align: Literal["linear", "attention"] = "linear"
    localizer: Literal["content", "cmin", "tgn"] = "content"
    window_sizes: tuple[int, ...] = (16, 24, 32, 40)
    window_stride: float = 0.125
    window_stride_abs: int = 0
    tau: float = 0.55
    tgn_threshold: float = 0.5

    def __post_init__(self):
        if self.hidden_dim < 2 or self.hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even and positive, got {self.hidden_dim}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by "
                             f"num_heads {self.num_heads}")
        if not self.window_sizes or min(self.window_sizes) < 1:
            raise ValueError(f"window_sizes must be positive sizes, got {self.window_sizes}")
        if self.integration != "filter" and self.branches != "both":
            raise ValueError(f"integration {self.integration!r} joins both branches; it needs "
                             f"branches 'both', not {self.branches!r}")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"tau must lie in (0, 1), got {self.tau}")

    @property
    def strides(self) -> tuple[int, ...]:
        """Window strides in steps."""
        return window_strides(self.window_sizes, self.window_stride, self.window_stride_abs)


class CrossModalAttention(nn.Module):
    """``X(A, B)``: every row of ``A`` gathers from ``B``.

    ``cma`` is eqs. 4-5 (multi-head scaled dot product with projections); ``cga`` adds the
    information gate of eq. 6, ``sigmoid(Z + b_g) ⊙ (Z + b_i)`` with
    ``Z = A W_q + CMA(A, B) W_v`` (the gate's own ``W^g`` when not tied); ``soft`` is
    ``softmax(A B^T / sqrt(d)) B``.

    Forward: a ``(B, n, d)``, b ``(B, m, d)``, masks ``(B, n)`` / ``(B, m)``. Returns
    ``(B, n, d)`` and the head-averaged attention ``(B, n, m)``.
    """

    def __init__(self, dim: int, num_heads: int, mode: str = "cga", tied: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.mode = mode
        self.cma = MultiHeadAttention(dim, num_heads, dropout=dropout) if mode != "soft" else None
        if mode == "cga":
            self.w_q = nn.Linear(dim, dim, bias=False)
            self.w_v = nn.Linear(dim, dim, bias=False)
            self.gate_q = None if tied else nn.Linear(dim, dim, bias=False)
            self.gate_v = None if tied else nn.Linear(dim, dim, bias=False)
            self.b_g = nn.Parameter(torch.zeros(dim))
            self.b_i = nn.Parameter(torch.zeros(dim))

    def forward(self, a, b, a_mask, b_mask):
        if self.cma is None:
            logits = a @ b.transpose(1, 2) / math.sqrt(a.shape[-1])
            attn = masked_softmax(logits, b_mask[:, None, :], dim=-1)
            return attn @ b, attn
        out, weights = self.cma(a, b, key_mask=b_mask, query_mask=a_mask)  # eqs. 4-5
        if self.mode == "cga":
            info = self.w_q(a) + self.w_v(out)                              # eq. 6
            gate = info if self.gate_q is None else self.gate_q(a) + self.gate_v(out)
            out = torch.sigmoid(gate + self.b_g) * (info + self.b_i)
        return out, weights.mean(1)


class CrossModalEncoder(nn.Module):
    """Eqs. 7-8 with the residuals and LayerNorms the paper omits from its equations:
    ``H = LN(A + Drop(X(A, B)))``, ``Enc(A, B) = LN(H + Drop(FFN(H)))``. ``Enc(Q, V)`` is a
    Q-V encoder (a V-aware Q), ``Enc(V, Q)`` a V-Q encoder (a Q-aware V)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, attn: str = "cga",
                 tied: bool = True, dropout: float = 0.1):
        super().__init__()
        self.attn = CrossModalAttention(dim, num_heads, attn, tied, dropout)
        self.drop = Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, a, b, a_mask, b_mask):
        x, attn = self.attn(a, b, a_mask, b_mask)
        h = self.norm1(a + self.drop(x))
        out = self.norm2(h + self.drop(self.ffn(h)))
        return out * a_mask.unsqueeze(-1).to(out.dtype), attn


class LengthProjection(nn.Module):
    """Eq. 11: ``Q_hat = W Q + b`` along the length axis, query slots -> video slots.

    ``W (n_v, n_q)``; the bias has one value per video slot (the paper's ``b in R^{n_q}``
    cannot broadcast). Padded query rows are zeroed, so a shorter padded batch uses the first
    columns of W only and every query sees the same map whatever the batch.
    """

    def __init__(self, num_clips: int, max_query_len: int):
        super().__init__()
        self.linear = nn.Linear(max_query_len, num_clips)

    def forward(self, query, query_mask, num_steps: int):
        n_v, n_q = self.linear.weight.shape
        if num_steps > n_v or query.shape[1] > n_q:
            raise ValueError(f"FIAN's query-to-video projection is sized for {n_v} clips and "
                             f"{n_q} words; got {num_steps} clips and {query.shape[1]} words "
                             f"(set data.num_clips / data.max_query_len to the model's)")
        w = self.linear.weight[:num_steps, : query.shape[1]]
        q = query * query_mask.unsqueeze(-1).to(query.dtype)
        return torch.einsum("vq,bqd->bvd", w, q) + self.linear.bias[:num_steps, None]


class VideoEnhancedIntegration(nn.Module):
    """Eqs. 12-14: ``M = LN(V_hat + sigmoid(Q_hat W_r + b_r) ⊙ Q_hat)`` over one or two
    branches (``V_hat``, ``Q_hat`` concatenate the branches' features)."""

    def __init__(self, dim: int, branches: int, num_clips: int, max_query_len: int,
                 align: str = "linear"):
        super().__init__()
        self.align = align
        width = branches * dim
        self.proj = nn.ModuleList(LengthProjection(num_clips, max_query_len)
                                  for _ in range(branches)) if align == "linear" else None
        self.filter = nn.Linear(width, width)                               # W_r, b_r
        self.norm = nn.LayerNorm(width)

    def _to_video(self, i, video, query, video_mask, query_mask):
        if self.proj is not None:
            return self.proj[i](query, query_mask, video.shape[1])
        logits = video @ query.transpose(1, 2) / math.sqrt(video.shape[-1])
        return masked_softmax(logits, query_mask[:, None, :], dim=-1) @ query

    def forward(self, videos, queries, video_mask, query_mask):
        q_hat = torch.cat([self._to_video(i, v, q, video_mask, query_mask)
                           for i, (v, q) in enumerate(zip(videos, queries))], -1)
        v_hat = torch.cat(videos, -1)                                       # eq. 12
        r = torch.sigmoid(self.filter(q_hat))                               # eq. 13
        return self.norm(v_hat + r * q_hat)                                 # eq. 14


class FIAN(GroundingModel):
    """The full network; see the module docstring. Build with :func:`build_fian`."""

    def __init__(self, cfg: FIANConfig, video_dim: int, word_dim: int, num_clips: int,
                 max_query_len: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.drop = Dropout(cfg.dropout)
        self.query_encoder = RNNEncoder(word_dim, d)                        # eqs. 1-3
        self.video_encoder = SelfAttentionVideoEncoder(
            video_dim, d, num_layers=cfg.video_sa_layers, num_heads=cfg.video_sa_heads,
            window=cfg.video_sa_window, layer_norm=True, project_input=True,
            dropout=cfg.encoder_dropout)

        def encoder():
            return CrossModalEncoder(d, cfg.num_heads, cfg.ffn_dim, cfg.attn, cfg.cga_tied,
                                     cfg.encoder_dropout)

        # One encoder per step (eq. 9: q1 = Enc(Q, V), v1 = Enc(V, q1); eq. 10: v2 = Enc(V, Q),
        # q2 = Enc(Q, v2)); only the steps whose output is used are built. With sharing the two
        # Q-V steps (q1, q2) are one module, and so are the two V-Q steps (v1, v2).
        steps = {"both": ("q1", "v1", "v2", "q2"), "qv_iter": ("q1", "v1"),
                 "vq_iter": ("v2", "q2"), "vq_single": ("v2",)}[cfg.branches]
        if cfg.integration != "filter":
            steps = tuple(n for n in steps if n != "q2")     # Concat/Matrix never use q2
        self.encoders = nn.ModuleDict()
        for name in steps:
            twin = {"q1": "q2", "q2": "q1", "v1": "v2", "v2": "v1"}[name]
            if cfg.share_branch_encoders and twin in self.encoders:
                self.encoders[name] = self.encoders[twin]
            else:
                self.encoders[name] = encoder()
        n_branches = 2 if cfg.branches == "both" else 1
        widths = {"filter": n_branches * d, "concat": 2 * d, "matrix": 4 * d}
        if cfg.branches == "vq_single":
            widths["filter"] = d
        self.integration = None
        if cfg.integration == "filter" and cfg.branches != "vq_single":
            self.integration = VideoEnhancedIntegration(d, n_branches, num_clips, max_query_len,
                                                        cfg.integration_align)
        self.localizer_rnn = RNNEncoder(widths[cfg.integration], d)
        if cfg.localizer == "content":
            self.head = SlidingWindowHead(d, cfg.window_sizes, cfg.strides)
        elif cfg.localizer == "cmin":
            self.head = CenteredAnchorHead(d, tuple(float(k) for k in cfg.window_sizes))
        else:
            self.head = EndingAnchorHead(d, cfg.window_sizes)

    def _iterate(self, video, query, vmask, qmask):
        """Eqs. 9-10; returns the branches' videos and queries and an attention map."""
        videos, queries = [], []
        attn = None
        if "q1" in self.encoders:                                           # eq. 9
            q1, _ = self.encoders["q1"](query, video, qmask, vmask)
            v1, attn = self.encoders["v1"](video, q1, vmask, qmask)
            videos.append(v1)
            queries.append(q1)
        if "v2" in self.encoders:                                           # eq. 10
            v2, attn = self.encoders["v2"](video, query, vmask, qmask)
            videos.append(v2)
            if "q2" in self.encoders:
                queries.append(self.encoders["q2"](query, v2, qmask, vmask)[0])
        return videos, queries, attn

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        vmask, qmask = batch.video_mask, batch.query_mask
        query, _ = self.query_encoder(self.drop(batch.query_feats), qmask)  # h_q (B, L, d)
        video, _ = self.video_encoder(self.drop(batch.video_feats), vmask)  # h_v (B, T, d)
        videos, queries, attn = self._iterate(self.drop(video), self.drop(query), vmask, qmask)
        if self.integration is not None:
            fused = self.integration(videos, queries, vmask, qmask)
        elif self.cfg.integration == "concat" or len(videos) == 1:
            fused = torch.cat(videos, -1)
        else:
            v1, v2 = videos
            fused = torch.cat([v1, v2, v1 - v2, v1 * v2], -1)
        feats, _ = self.localizer_rnn(fused, vmask)                         # M_hat (B, T, d)
        logits, offsets = self.head(self.drop(feats))
        out = {"logits": logits, "cross_attention": attn}
        if offsets is not None:
            out["offsets"] = offsets
        return out

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-window training targets: ``iou`` ``(B, K)`` (0 on illegal windows),
        ``offsets`` ``(B, K, 2)`` in steps, ``legal`` and ``positive`` (IoU > τ) ``(B, K)``."""
        lengths = batch.video_mask.sum(1)
        layout = self.head.layout(batch.video_feats.shape[1], batch.video_feats.device)
        iou, offsets = layout.targets(batch.spans, batch.durations, lengths)
        legal = layout.legal(lengths)
        iou = iou * legal
        return {"iou": iou, "offsets": offsets, "legal": legal,
                "positive": legal & (iou > self.cfg.tau)}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """``align`` (eq. 16, balanced) and ``boundary`` (eq. 17); eq. 18's α is
        ``loss_weights``. The ``tgn`` localizer trains by weighted BCE and has no boundary."""
        t = self.targets(batch)
        logits = outputs["logits"]
        if self.cfg.localizer == "tgn":
            return {"align": weighted_anchor_bce(logits, t["iou"], t["legal"],
                                                 self.cfg.tgn_threshold),
                    "boundary": logits.new_zeros(())}
        return {"align": balanced_alignment_loss(logits, t["iou"], t["legal"], t["positive"]),
                "boundary": offset_loss(outputs["offsets"], t["offsets"], t["positive"],
                                        per_video=True)}

    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        layout = self.head.layout(batch.video_feats.shape[1], batch.video_feats.device)
        return anchor_candidates(layout, outputs["logits"], outputs.get("offsets"),
                                 batch.video_mask, batch.durations)

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``cross_attention`` (B, T, L): the last V-Q encoder's frame-to-word weights."""
        return {"cross_attention": outputs["cross_attention"]}


@register_model("fian", FIANConfig)
def build_fian(cfg: FIANConfig, ctx: ModelContext) -> FIAN:
    return FIAN(cfg, ctx.video_dim, ctx.word_dim, ctx.num_clips, ctx.max_query_len)
