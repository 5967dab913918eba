"""CSMGAN: jointly cross- and self-modal graph attention network (Liu et al., ACM MM 2020).

Frames and words are nodes of a joint graph. Each of ``L`` layers passes gated cross-modal
messages (CMG) and then position-aware self-modal messages (SMG), updating nodes with a GRU
cell. The words are encoded at word, phrase and sentence level; after the graph every frame
is joined with an attention summary of the words, a BiGRU adds context, and centred
multi-scale anchors are scored and regressed. Equation numbers refer to the paper; the
mapping and every reading of an ambiguity are in ``docs/models/csmgan.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.config.schema import ModelConfig
from momentloc.data.batch import Batch
from momentloc.heads.anchors import (
    AnchorLayout,
    CenteredAnchorHead,
    anchor_candidates,
    ground_truth_steps,
    scaled_widths,
)
from momentloc.losses.alignment import iou_alignment_loss, offset_loss
from momentloc.metrics.protocol_cmin import ground_truth_frames
from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.layers.convgru import ConvGRUCell
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.masking import masked_softmax
from momentloc.models.layers.position import sinusoidal_table
from momentloc.models.layers.rnn import RNNEncoder
from momentloc.models.layers.video_encoder import SelfAttentionVideoEncoder
from momentloc.models.registry import register_model


@dataclass(frozen=True)
class CSMGANConfig(ModelConfig):
    """CSMGAN hyperparameters and ablation switches (paper defaults; Charades-STA anchors).

    Attributes:
        hidden_dim: model width d (every BiGRU outputs d, d/2 per direction).
        dropout: on the input features, after the encoders and before the anchor head.
        video_sa_layers / video_sa_heads: self-attention layers and heads of the video
            encoder. video_sa_window: attend within +-window steps (0 = global; the release
            uses 3). video_sa_on_input: attend on the raw features before any projection
            (the release) instead of after a Linear to d. video_sa_attn_dropout: dropout on
            the attention weights (None: ``dropout``; the release has none).
        sent_encoder: ``hierarchical`` (word/phrase/sentence levels, eqs. 1-3) or ``bigru``
            (the "w/o HS" ablation: one BiGRU over the word vectors).
        phrase_dilation: dilation of the bigram/trigram convolutions (release: 2).
        phrase_activation: ``tanh`` (eq. 1) or ``none`` (release).
        sent_rnn / sent_rnn_layers: the sentence-level recurrent net (release: 2-layer LSTM).
        graph_layers: joint graph layers L (0 = "w/o CSG"; the release runs 1).
        cmg_proj: heterogeneous embedding of eq. 4: ``both`` (W_q and W_v), ``none`` ("w/o
            EM") or ``video`` (only frames projected, bias-free, as the release).
        cmg_gate: message gate of eqs. 6-7 ("w/o MG" = false).
        use_smg: the self-modal graph ("w/o SMG" = false).
        smg_pe_alpha: α of eq. 10 ("w/o PE" = 0).
        smg_scaled: divide the SMG similarities by sqrt(d) (not in the paper). At d = 512 the
            literal similarities put 0.999 of each node's weight on itself (the positional
            term dominates), so the SMG passes each node its own state; scaled, the weights
            spread over about 24 nearby nodes (docs: "The self-modal graph at width 512").
        node_update: ``convgru`` (eqs. 8, 12) or ``add`` ("w/o CG": h + m).
        convgru_kernel: 1 = a GRU cell per node; an odd k > 1 convolves along the sequence.
        convgru_update_bias: initial bias of the GRU update gates (not in the paper): -2
            starts each node near its previous state, so that the 4 L stacked updates do not
            wash out the inputs at initialization (with 0, training stalls).
        integ_attn: word attention of the integration, ``cosine`` (eqs. 13-14) or
            ``additive`` (release). integ_temperature: learnable scale on the cosines.
        anchor_kernels / anchor_stride: the paper's "kernel sizes" w and "stride" ρ.
        anchor_widths: ``scaled``: widths ``2 ρ (w - 1) + 1`` (the authors' reading) or
            ``kernel``: widths w.
        tau: positive threshold τ of eq. 18 (with ``positive_rule: relative``, the fraction
            of the video's best IoU that an anchor must reach, release ActivityNet 0.8).
        align_target: ``iou`` (eq. 17) or ``iou_over_max`` (each video's IoUs divided by
            its best, release).

    Release switches (docs/models/csmgan.md, "Paper and release"; the defaults are the paper
    reading):
        video_in_linear: a learned ``Linear(video_dim, video_in_linear)`` on the features before the
            video encoder (release TACoS: 4096 -> 500); 0 = none.
        phrase_align: ``forward`` (position n sees words n, n+δ, ... zero-padded at the end)
            or ``centered`` (symmetric padding: the release's bigram sees n-1 and n+1 at
            dilation 2, its trigram n-2, n, n+2).
        sent_rnn_packed: the sentence-level RNN skips padded words (false: it runs over all
            positions, its backward direction starting in the padding, as the release).
        sent_rnn_dropout: dropout between the sentence RNN's layers (release 0.2).
        graph_softmax: ``sender`` (each node's incoming weights sum to 1, eqs. 5, 11) or
            ``receiver`` (each sending node's weights sum to 1 over the receiving nodes, the
            release's CMG and SMG).
        mask_words: padded words take no part in the graph (false: they are unmasked nodes of
            the co-attention, the word self-graph and the node updates, as the release).
        convgru_init: ``default`` (PyTorch init, update-gate bias ``convgru_update_bias``) or
            ``orthogonal`` (orthogonal gate weights, zero biases, the release).
        legal_end: an anchor is legal when its end is ``<= last_step`` (n - 1) or, as the
            release, ``< num_steps`` (n; half a step past the last one is allowed).
        anchor_rounding: ``none`` or ``trunc``: offsets refine the anchors truncated toward
            zero (the release adds them to integer proposals; targets keep the exact ones).
        target_grid: ``continuous`` (ground truth ``[s n/T, e n/T)`` in fractional steps),
            ``frames`` (snapped to the inclusive integer steps that cover it; IoU and offset
            targets are then on integer frames) or ``raw_frames`` (the release's frame labels,
            from the video's raw feature count and the moment on those rows,
            ``meta["num_features"]`` and ``meta["span_rows"]``, which datasets read from a
            feature store set: :func:`~momentloc.metrics.protocol_cmin.release_frame_labels`;
            ``eval.protocol: cmin`` takes its ground truth by the same rule).
        align_norm: average the alignment BCE over the ``legal`` anchors or over ``all``
            anchors of the batch (the release's mean over B x K with illegal ones at 0).
        boundary_reduction: the two boundary terms of an anchor are summed (``sum``, eq. 18)
            or averaged (``mean``, the release's SmoothL1 over n_pos x 2).
    """

    loss_weights: dict[str, float] = field(default_factory=lambda: {"boundary": 0.005})
    hidden_dim: int = 512
    dropout: float = 0.2
    video_sa_layers: int = 2
    video_sa_heads: int = 8
    video_sa_window: int = 0
    video_sa_on_input: bool = False
    video_sa_attn_dropout: float | None = None
    sent_encoder: Literal["hierarchical", "bigru"] = "hierarchical"
    phrase_dilation: int = 1
    phrase_activation: Literal["tanh", "none"] = "tanh"
    sent_rnn: Literal["gru", "lstm"] = "gru"
    sent_rnn_layers: int = 1
    graph_layers: int = 2
    cmg_proj: Literal["both", "video", "none"] = "both"
    cmg_gate: bool = True
    use_smg: bool = True
    smg_pe_alpha: float = 1.0
    smg_scaled: bool = False
    node_update: Literal["convgru", "add"] = "convgru"
    convgru_kernel: int = 1
    convgru_update_bias: float = -2.0
    integ_attn: Literal["cosine", "additive"] = "cosine"
    integ_temperature: bool = False
    anchor_kernels: tuple[int, ...] = (16, 24, 32, 40)
    anchor_stride: float = 0.25
    anchor_widths: Literal["scaled", "kernel"] = "scaled"
    tau: float = 0.5
    positive_rule: Literal["threshold", "at_least", "relative"] = "threshold"
    align_target: Literal["iou", "iou_over_max"] = "iou"
    video_in_linear: int = 0
    phrase_align: Literal["forward", "centered"] = "forward"
    sent_rnn_packed: bool = True
    sent_rnn_dropout: float = 0.0
    graph_softmax: Literal["sender", "receiver"] = "sender"
    mask_words: bool = True
    convgru_init: Literal["default", "orthogonal"] = "default"
    legal_end: Literal["last_step", "num_steps"] = "last_step"
    anchor_rounding: Literal["none", "trunc"] = "none"
    target_grid: Literal["continuous", "frames", "raw_frames"] = "continuous"
    align_norm: Literal["legal", "all"] = "legal"
    boundary_reduction: Literal["sum", "mean"] = "sum"

    def __post_init__(self):
        if self.hidden_dim < 2 or self.hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even and positive, got {self.hidden_dim}")
        if self.graph_layers < 0:
            raise ValueError(f"graph_layers must be >= 0, got {self.graph_layers}")
        if not self.anchor_kernels or min(self.anchor_kernels) < 1:
            raise ValueError(f"anchor_kernels must be positive sizes, got {self.anchor_kernels}")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"tau must lie in (0, 1), got {self.tau}")
        if self.video_in_linear < 0:
            raise ValueError(f"video_in_linear must be >= 0, got {self.video_in_linear}")

    @property
    def widths(self) -> tuple[float, ...]:
        """Anchor widths in steps."""
        if self.anchor_widths == "kernel":
            return tuple(float(w) for w in self.anchor_kernels)
        return scaled_widths(self.anchor_kernels, self.anchor_stride)


class HierarchicalSentenceEncoder(nn.Module):
    """Word, phrase and sentence levels of the query (eqs. 1-3).

    Phrase level: uni/bi/tri-gram ``tanh(Conv1d)`` with ``d_g`` filters, zero-padded at the
    end so that position n sees words n..n+k-1 (eq. 1; ``align="centered"`` pads both sides
    instead), max-pooled over k (eq. 2). Sentence level: a BiGRU over the phrases, width d_g.
    Output: a BiGRU over ``[Qw; Qp; Qs]`` (eq. 3).

    ``packed=False`` runs the sentence RNN over every position (padding included) and
    ``mask_phrases=False`` keeps the phrase values at padded positions (the release does both).

    Forward: words ``(B, L, Dw)``, mask ``(B, L)``. Returns ``(B, L, output_dim)``.
    """

    def __init__(self, word_dim: int, output_dim: int, dilation: int = 1,
                 activation: str = "tanh", rnn: str = "gru", rnn_layers: int = 1,
                 align: str = "forward", packed: bool = True, mask_phrases: bool = True,
                 rnn_dropout: float = 0.0):
        super().__init__()
        self.activation, self.align = activation, align
        self.packed, self.mask_phrases = packed, mask_phrases
        self.convs = nn.ModuleList(nn.Conv1d(word_dim, word_dim, k, dilation=dilation)
                                   for k in (1, 2, 3))
        sent_dim = word_dim - word_dim % 2          # a BiGRU needs an even width
        self.sentence = RNNEncoder(word_dim, sent_dim, cell=rnn, num_layers=rnn_layers,
                                   dropout=rnn_dropout)
        self.fuse = RNNEncoder(2 * word_dim + sent_dim, output_dim)

    def phrases(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Phrase level ``Qp`` ``(B, L, Dw)`` (eqs. 1-2) of masked word vectors."""
        x = words.transpose(1, 2)                                           # (B, Dw, L)
        levels = []
        for conv in self.convs:
            reach = (conv.kernel_size[0] - 1) * conv.dilation[0]
            pad = (0, reach) if self.align == "forward" else (reach // 2, reach - reach // 2)
            p = conv(F.pad(x, pad))                                         # eq. 1
            levels.append(torch.tanh(p) if self.activation == "tanh" else p)
        out = torch.stack(levels).amax(0).transpose(1, 2)
        return out * mask.unsqueeze(-1).to(words.dtype) if self.mask_phrases else out

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = words * mask.unsqueeze(-1).to(words.dtype)
        phrases = self.phrases(words, mask)                                 # eq. 2
        sentence, _ = self.sentence(phrases, mask if self.packed else None)
        out, _ = self.fuse(torch.cat([words, phrases, sentence], -1), mask)  # eq. 3
        return out


class JointGraphLayer(nn.Module):
    """One cross-modal (CMG) then self-modal (SMG) relation graph layer (sec. 3.3).

    Forward: video ``(B, T, d)``, query ``(B, L, d)``, their masks (``query_mask`` None:
    padded words are ordinary nodes, as in the release). Returns the updated ``(video,
    query)`` and attention maps ``cmg`` ``(B, L, T)`` (the weights of the word -> frame
    messages), ``smg`` ``(B, T, T)`` and ``smg_query`` ``(B, L, L)`` (row k: the weights of
    the messages node k receives).

    ``softmax="sender"`` normalises the weights each receiving node gets (eqs. 5, 11);
    ``"receiver"`` normalises each sending node's weights over the nodes it reaches (the
    release's ``softmax`` over the other axis, in the CMG and the SMG).
    """

    def __init__(self, dim: int, proj: str = "both", gate: bool = True, use_smg: bool = True,
                 pe_alpha: float = 1.0, smg_scaled: bool = False, update: str = "convgru",
                 kernel: int = 1, update_bias: float = 0.0, softmax: str = "sender",
                 init: str = "default"):
        super().__init__()
        self.dim, self.use_smg, self.update = dim, use_smg, update
        self.proj, self.softmax = proj, softmax
        self.pe_alpha = pe_alpha
        self.smg_scale = 1.0 / math.sqrt(dim) if smg_scaled else 1.0
        # Eq. 4's W_q, W_v: bias-free linear maps into a joint space.
        self.w_q = nn.Linear(dim, dim, bias=False) if proj == "both" else None
        self.w_v = nn.Linear(dim, dim, bias=False) if proj != "none" else None
        # Eq. 6 gate weights W_g (1 x d) and b_g, one pair per message direction.
        self.gate_v = nn.Linear(dim, 1) if gate else None
        self.gate_q = nn.Linear(dim, 1) if gate else None
        names = ("cmg_video", "cmg_query") + (("smg_video", "smg_query") if use_smg else ())
        self.cells = nn.ModuleDict(
            {n: ConvGRUCell(dim, dim, kernel, update_bias) for n in names}
            if update == "convgru" else {})
        if init == "orthogonal":
            for cell in self.cells.values():
                _orthogonal_gru_init(cell)

    def _update(self, name: str, message, state, mask):
        if self.update == "add":
            out = state + message
            return out if mask is None else out * mask.unsqueeze(-1).to(state.dtype)
        return self.cells[name](message, state, mask)

    def _weights(self, sim, recv_mask, send_mask, recv_dim: int):
        """Softmax of ``sim`` over the receivers (axis ``recv_dim``) or the senders."""
        other = 3 - recv_dim
        if self.softmax == "sender":
            return masked_softmax(sim, send_mask, dim=other)
        w = masked_softmax(sim, recv_mask, dim=recv_dim)
        return w if send_mask is None else w * send_mask

    def _self_graph(self, h: torch.Tensor, mask: torch.Tensor | None):
        pe = sinusoidal_table(h.shape[1], self.dim, device=h.device, dtype=h.dtype)
        x = h + self.pe_alpha * pe                                          # eq. 10 (PE eq. 9)
        sim = x @ x.transpose(1, 2) * self.smg_scale                        # (B, N, N)
        m = None if mask is None else mask
        attn = self._weights(sim, None if m is None else m[:, :, None],
                             None if m is None else m[:, None, :], recv_dim=1)
        return attn @ h, attn                                               # eq. 11

    def forward(self, video, query, video_mask, query_mask):
        qe = self.w_q(query) if self.w_q is not None else query
        ve = self.w_v(video) if self.w_v is not None else video
        edges = qe @ ve.transpose(1, 2)                                     # eq. 4 (B, L, T)
        qm = None if query_mask is None else query_mask[:, :, None]
        vm = video_mask[:, None, :]
        a_v = self._weights(edges, vm, qm, recv_dim=2)                      # words -> frame
        a_q = self._weights(edges, qm, vm, recv_dim=1)                      # frames -> word
        w_v, w_q = a_v, a_q
        if self.gate_v is not None:
            # Eq. 6 on the message A[n,t] h_n: sigmoid((A h_n) W_g + b_g), computed exactly as
            # sigmoid(A (h_n W_g) + b_g) without materializing the (B, L, T, d) messages.
            w_v = a_v * torch.sigmoid(a_v * F.linear(query, self.gate_v.weight)
                                      + self.gate_v.bias)
            w_q = a_q * torch.sigmoid(a_q * F.linear(video, self.gate_q.weight).transpose(1, 2)
                                      + self.gate_q.bias)
        msg_v = w_v.transpose(1, 2) @ query                                 # eqs. 5, 7 (B, T, d)
        # reverse (B, L, d); with only the frames projected their projection is the value
        msg_q = w_q @ (ve if self.proj == "video" else video)
        video = self._update("cmg_video", msg_v, video, video_mask)         # eq. 8
        query = self._update("cmg_query", msg_q, query, query_mask)
        maps = {"cmg": a_v}
        if self.use_smg:
            msg_v, maps["smg"] = self._self_graph(video, video_mask)
            msg_q, maps["smg_query"] = self._self_graph(query, query_mask)
            video = self._update("smg_video", msg_v, video, video_mask)     # eq. 12
            query = self._update("smg_query", msg_q, query, query_mask)
        return video, query, maps


def _orthogonal_gru_init(cell: ConvGRUCell) -> None:
    """The release's GRU-cell init: each gate's weight orthogonal, every bias zero."""
    hidden = cell.candidate.out_channels
    with torch.no_grad():
        for weight, rows in ((cell.gates.weight, slice(0, hidden)),
                             (cell.gates.weight, slice(hidden, 2 * hidden)),
                             (cell.candidate.weight, slice(0, hidden))):
            for k in range(weight.shape[-1]):
                w = torch.empty(hidden, weight.shape[1])
                nn.init.orthogonal_(w)
                weight[rows, :, k] = w
        cell.gates.bias.zero_()
        cell.candidate.bias.zero_()


class MultiModalIntegration(nn.Module):
    """Eqs. 13-14: attend the words from every frame, join ``[v_t; h_t]`` -> ``(B, T, 2d)``.

    ``cosine``: softmax over words of ``cos(v_t, q_n W_c)``; values are ``q_n`` (no W_c).
    ``additive``: softmax of ``w^T tanh(W1 v_t + W2 q_n)`` (the release).
    """

    def __init__(self, dim: int, mode: str = "cosine", temperature: bool = False):
        super().__init__()
        self.mode = mode
        if mode == "cosine":
            self.w_c = nn.Linear(dim, dim, bias=False)
            self.temperature = nn.Parameter(torch.ones(())) if temperature else None
        else:
            self.w1 = nn.Linear(dim, dim)
            self.w2 = nn.Linear(dim, dim, bias=False)
            self.w = nn.Linear(dim, 1, bias=False)

    def forward(self, video, query, query_mask):
        if self.mode == "cosine":
            keys = F.normalize(self.w_c(query), dim=-1)
            sim = F.normalize(video, dim=-1) @ keys.transpose(1, 2)         # eq. 13 (B, T, L)
            if self.temperature is not None:
                sim = sim * self.temperature
        else:
            sim = self.w(torch.tanh(self.w1(video)[:, :, None] + self.w2(query)[:, None])
                         ).squeeze(-1)
        attn = masked_softmax(sim, query_mask[:, None, :], dim=-1)
        return torch.cat([video, attn @ query], -1), attn                  # eq. 14, f_t


class CSMGAN(GroundingModel):
    """The full network; see the module docstring. Build with :func:`build_csmgan`."""

    def __init__(self, cfg: CSMGANConfig, video_dim: int, word_dim: int, max_words: int = 0):
        super().__init__()
        self.cfg = cfg
        # With unmasked words (the release) the padding is part of the input: queries are
        # padded to the release's fixed length, data.max_query_len.
        self.max_words = max_words
        d = cfg.hidden_dim
        self.drop = Dropout(cfg.dropout)
        self.video_in = nn.Linear(video_dim, cfg.video_in_linear) if cfg.video_in_linear else None
        self.video_encoder = SelfAttentionVideoEncoder(
            cfg.video_in_linear or video_dim, d, num_layers=cfg.video_sa_layers,
            num_heads=cfg.video_sa_heads, window=cfg.video_sa_window, layer_norm=False,
            project_input=not cfg.video_sa_on_input, dropout=cfg.dropout,
            attn_dropout=cfg.video_sa_attn_dropout)
        if cfg.sent_encoder == "hierarchical":
            self.query_encoder = HierarchicalSentenceEncoder(
                word_dim, d, dilation=cfg.phrase_dilation, activation=cfg.phrase_activation,
                rnn=cfg.sent_rnn, rnn_layers=cfg.sent_rnn_layers, align=cfg.phrase_align,
                packed=cfg.sent_rnn_packed, mask_phrases=cfg.mask_words,
                rnn_dropout=cfg.sent_rnn_dropout)
        else:
            self.query_encoder = RNNEncoder(word_dim, d)
        self.graph = nn.ModuleList(
            JointGraphLayer(d, proj=cfg.cmg_proj, gate=cfg.cmg_gate, use_smg=cfg.use_smg,
                            pe_alpha=cfg.smg_pe_alpha, smg_scaled=cfg.smg_scaled,
                            update=cfg.node_update, kernel=cfg.convgru_kernel,
                            update_bias=cfg.convgru_update_bias, softmax=cfg.graph_softmax,
                            init=cfg.convgru_init)
            for _ in range(cfg.graph_layers))
        self.integration = MultiModalIntegration(d, cfg.integ_attn, cfg.integ_temperature)
        self.localizer_rnn = RNNEncoder(2 * d, d)
        self.head = CenteredAnchorHead(d, cfg.widths)

    def _encode_query(self, words, mask):
        if isinstance(self.query_encoder, RNNEncoder):
            return self.query_encoder(words, mask)[0]
        return self.query_encoder(words, mask)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        vmask, qmask, words = batch.video_mask, batch.query_mask, batch.query_feats
        if not self.cfg.mask_words and words.shape[1] < self.max_words:
            pad = self.max_words - words.shape[1]
            words, qmask = F.pad(words, (0, 0, 0, pad)), F.pad(qmask, (0, pad))
        feats = self.drop(batch.video_feats)
        if self.video_in is not None:
            feats = self.video_in(feats)
        video, _ = self.video_encoder(feats, vmask)                         # V_hat (B, T, d)
        query = self._encode_query(self.drop(words), qmask)                 # Q_hat (B, L, d)
        video, query = self.drop(video), self.drop(query)
        graph_qmask = qmask if self.cfg.mask_words else None
        out: dict[str, torch.Tensor] = {}
        for layer in self.graph:
            video, query, maps = layer(video, query, vmask, graph_qmask)
        if self.graph:
            out["cmg_attention"] = maps["cmg"]
            for name in ("smg", "smg_query"):
                if name in maps:
                    out[f"{name}_attention"] = maps[name]
        fused, out["integration_attention"] = self.integration(video, query, qmask)
        feats, _ = self.localizer_rnn(fused, vmask)                         # (B, T, d)
        out["logits"], out["offsets"] = self.head(self.drop(feats))         # eqs. 15-16
        return out

    def _layouts(self, batch: Batch) -> tuple[AnchorLayout, AnchorLayout]:
        """The anchors as placed (targets, legality) and as refined by the offsets."""
        layout = self.head.layout(batch.video_feats.shape[1], batch.video_feats.device)
        return layout, (layout.truncated() if self.cfg.anchor_rounding == "trunc" else layout)

    def _legal(self, layout: AnchorLayout, lengths: torch.Tensor) -> torch.Tensor:
        return layout.legal(lengths, end_before_length=self.cfg.legal_end == "num_steps")

    def target_steps(self, batch: Batch) -> torch.Tensor:
        """``(B, 2)`` the ground truth ``[start, end)`` in steps as ``target_grid`` places it
        (float64 integer steps on the frame grids)."""
        lengths = batch.video_mask.sum(1)
        if self.cfg.target_grid != "continuous":
            return ground_truth_frames(batch.spans, batch.durations, lengths, batch.meta,
                                       self.cfg.target_grid, batch.video_feats.shape[1])
        return ground_truth_steps(batch.spans, batch.durations, lengths)

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-anchor training targets: ``align`` ``(B, K)`` soft labels, ``offsets``
        ``(B, K, 2)`` in steps, ``legal`` and ``positive`` ``(B, K)`` bool."""
        cfg = self.cfg
        lengths = batch.video_mask.sum(1)
        layout, refined = self._layouts(batch)
        gt = self.target_steps(batch)
        if cfg.target_grid != "continuous":   # integer frame labels, exact IoUs
            layout, refined = layout.to(torch.float64), refined.to(torch.float64)
        iou = layout.iou_steps(gt)
        offsets = refined.offsets_steps(gt).to(batch.spans.dtype)
        legal = self._legal(layout, lengths)
        iou = iou * legal
        best = iou.amax(1, keepdim=True).clamp_min(1e-6)
        align = iou if cfg.align_target == "iou" else iou / best
        if cfg.positive_rule == "threshold":
            positive = legal & (iou > cfg.tau)
        elif cfg.positive_rule == "at_least":
            positive = legal & (iou >= cfg.tau)
        else:
            positive = legal & (iou >= cfg.tau * best) & (iou > 0)
        return {"align": align.to(batch.spans.dtype), "offsets": offsets, "legal": legal,
                "positive": positive}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """``align`` (eq. 17) and ``boundary`` (eq. 18); eq. 19's β is ``loss_weights``."""
        cfg, t = self.cfg, self.targets(batch)
        return {"align": iou_alignment_loss(outputs["logits"], t["align"], t["legal"],
                                            normalize=cfg.align_norm),
                "boundary": offset_loss(outputs["offsets"], t["offsets"], t["positive"],
                                        coords=cfg.boundary_reduction)}

    def candidates(self, outputs: dict[str, torch.Tensor], batch: Batch) -> Candidates:
        layout, refined = self._layouts(batch)
        legal = self._legal(layout, batch.video_mask.sum(1))
        return anchor_candidates(refined, outputs["logits"], outputs["offsets"],
                                 batch.video_mask, batch.durations, legal=legal)

    def attention_maps(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``cmg_attention`` (B, L, T), ``smg_attention`` (B, T, T) of the last graph layer
        and ``integration_attention`` (B, T, L)."""
        names = ("cmg_attention", "smg_attention", "integration_attention")
        return {k: outputs[k] for k in names if k in outputs}


@register_model("csmgan", CSMGANConfig)
def build_csmgan(cfg: CSMGANConfig, ctx: ModelContext) -> CSMGAN:
    return CSMGAN(cfg, ctx.video_dim, ctx.word_dim, ctx.max_query_len)
