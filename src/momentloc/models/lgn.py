"""LGN: language guided networks (Liu et al., ACM MM 2020; spec ``lgn.md``).

LGN is 2D-TAN (:mod:`momentloc.models.tan2d`) with the sentence vector ``f_s`` used at two
more stages:

1. feature extraction, eq. 2: an **early modulation unit** ``F = (W_M f_s) ∘ f_v`` after each
   fully connected layer of the frame CNN (:class:`EarlyModulation`, :class:`ModulatedCNN`);
2. fusion: 2D-TAN's Hadamard fusion, unchanged;
3. localization, eq. 3: a **late guidance module** ``C'_i = α_i C_i / ||·||``,
   ``α = W_M' f_s`` after k of the 2-D conv layers, one ``W_M'`` for all k
   (:class:`LateGuidance`).

:class:`LGN` subclasses :class:`~momentloc.models.tan2d.TAN2D` and only overrides its
``encode_clips`` (early modulation) and ``map_hook`` (late guidance) stages; with
``em: false`` and ``lg_k: 0`` it is 2D-TAN. The loss is 2D-TAN's scaled-IoU BCE with
``tmin = 0``, ``tmax = 0.5``.

Where the early units act (``em_impl``; spec A1):

- ``adapter`` (default, for precomputed fc7/fc features): two ``Linear(D, D)`` + ReLU layers
  initialized to the identity run on the features, each followed by a unit and dropout. A
  deviation: the paper modulates the CNN's own fc6/fc7, which precomputed features are
  already past.
- ``fc_head`` (faithful, for pool5 features the user extracts): fc6/fc7 run inside the model
  (optionally initialized from the CNN's weights, ``fc_weights``) with a unit after each;
  ``em_at: conv`` instead modulates the pool5 channel maps (the paper's worse placement).
- ``clip`` (a cheap proxy): one unit on the ``Conv1d`` activations of 2D-TAN's FrameAvgPool.

:class:`ModulatedCNN` wraps any frame CNN (frames -> conv trunk -> FC layers) the same way,
for users who run the CNN end to end; pass it to :class:`LGN` as ``visual``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.data.batch import Batch
from momentloc.errors import CheckpointError, ConfigError
from momentloc.heads.map2d import LayerHook
from momentloc.models.base import ModelContext
from momentloc.models.layers.dropout import Dropout
from momentloc.models.registry import register_model
from momentloc.models.tan2d import TAN2D, TAN2DConfig

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh, nn.Sigmoid)
_FC = (nn.Linear,)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LGNConfig(TAN2DConfig):
    """LGN hyperparameters: 2D-TAN's (:class:`TAN2DConfig`) plus the two modules.

    Attributes:
        tmin / tmax: IoU rescaling of the loss, 0 and 0.5 in the paper (spec A6).
        em: early modulation units on (eq. 2).
        em_impl: ``adapter`` (identity-initialized FC layers over fc7 features; a deviation),
            ``fc_head`` (fc6/fc7 over pool5 features, the paper's setting) or ``clip`` (one
            unit on FrameAvgPool's activations). See the module docstring.
        em_at: ``fc`` (after each FC layer, the paper's choice) or ``conv`` (on the conv
            feature maps; only ``fc_head``, whose pool5 input is the last conv block's output).
        em_layers: FC layers, each followed by a unit (2 in the paper).
        em_dropout: dropout after each unit (0.75 in the paper).
        fc_dim: width of the ``fc_head`` layers (4096 for VGG16 and C3D).
        fc_relu: ReLU after each FC layer (fc features are post-ReLU; set false for signed
            inputs such as PCA-reduced features, so the identity adapter keeps them intact).
        fc_weights: ``fc_head`` only: a ``torch.save``d state dict with ``fc6.weight``,
            ``fc6.bias``, ``fc7.weight``, ... (the CNN's pretrained FC layers), or ``None``.
        conv_channels: channels of the pool5 maps (``em_at: conv``; VGG16 and C3D: 512).
        lg_k: late guidance modules (0 = off, at most ``num_layers``; 6 in the paper).
        lg_norm: ``channel`` normalizes ``α ∘ C`` over channels at each cell (spec A3
            recommendation); ``spatial`` is eq. 3 read literally (over each channel's map, which
            cancels α's magnitude); ``none`` skips it.
        lg_position: guidance after the ``last_k`` (spec A4) or ``first_k`` conv layers.
    """

    tmin: float = 0.0
    tmax: float = 0.5
    em: bool = True
    em_impl: Literal["adapter", "fc_head", "clip"] = "adapter"
    em_at: Literal["fc", "conv"] = "fc"
    em_layers: int = 2
    em_dropout: float = 0.75
    fc_dim: int = 4096
    fc_relu: bool = True
    fc_weights: str | None = None
    conv_channels: int = 512
    lg_k: int = 6
    lg_norm: Literal["channel", "spatial", "none"] = "channel"
    lg_position: Literal["last_k", "first_k"] = "last_k"

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.lg_k <= self.num_layers:
            raise ValueError(f"lg_k={self.lg_k} must be between 0 and num_layers={self.num_layers}")
        if self.em_layers < 1 or self.fc_dim < 1 or self.conv_channels < 1:
            raise ValueError("em_layers, fc_dim and conv_channels must be >= 1")
        if not 0.0 <= self.em_dropout < 1.0:
            raise ValueError(f"em_dropout must be in [0, 1), got {self.em_dropout}")
        if self.em_at == "conv" and self.em_impl != "fc_head":
            raise ValueError("em_at: conv modulates the conv feature maps, which only "
                             "em_impl: fc_head (pool5 inputs) has")
        if self.fc_weights is not None and self.em_impl != "fc_head":
            raise ValueError("fc_weights initializes the fc_head layers; set em_impl: fc_head")


class EarlyModulation(nn.Module):
    """Eq. 2: ``F = (W_M f_s) ∘ f_v``, one learned ``W_M`` per unit (spec A7: a Linear).

    ``W_M``'s bias starts at 1, so a fresh unit is a gain near 1 around which the sentence
    moves each channel (the modulated network starts close to the unmodulated one).

    Args:
        query_dim: width of ``f_s``. channels: width of ``f_v`` (channels of a conv map).
    """

    def __init__(self, query_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(query_dim, channels)
        nn.init.ones_(self.proj.bias)

    def forward(self, feats: torch.Tensor, query: torch.Tensor, channel_dim: int = -1
                ) -> torch.Tensor:
        """``feats``: ``(R, ..., C, ...)`` with channels at ``channel_dim`` and the same leading
        R as ``query (R, Ds)``; the gain broadcasts over every other axis."""
        gain = self.proj(query)                                            # (R, C)
        dim = channel_dim % feats.dim()
        shape = [gain.shape[0]] + [1] * (feats.dim() - 1)
        shape[dim] = gain.shape[1]
        return feats * gain.view(shape)


class LateGuidance(nn.Module):
    """Eq. 3: ``α = W_M' f_s`` rescales each channel of a 2-D conv map, then a normalization.

    One instance is shared by all k modules (the paper shares ``W_M'``): compute
    ``alpha(f_s)`` once per batch, then :meth:`forward` after each guided layer.

    Normalizations (spec A3): ``channel``: ``U / ||U||`` over the channel axis at each cell
    (α's relative weights survive); ``spatial``: eq. 3 literally, ``U_i / ||U_i||`` over
    channel i's map (this equals ``sign(α_i) C_i / ||C_i||``, α's magnitude cancels);
    ``none``: ``U = α ∘ C``. Cells off the mask stay 0.
    """

    def __init__(self, query_dim: int, channels: int, norm: str = "channel", eps: float = 1e-12):
        super().__init__()
        if norm not in ("channel", "spatial", "none"):
            raise ValueError(f"unknown late guidance normalization {norm!r} "
                             f"(channel, spatial, none)")
        self.norm = norm
        self.eps = eps
        self.proj = nn.Linear(query_dim, channels)
        nn.init.ones_(self.proj.bias)

    def alpha(self, query: torch.Tensor) -> torch.Tensor:
        """``f_s (B, Ds)`` -> ``α (B, C)``."""
        return self.proj(query)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, C, H, W)``, ``alpha (B, C)``, ``mask (B, H, W)`` bool -> ``(B, C, H, W)``."""
        u = alpha[:, :, None, None] * x
        if self.norm == "channel":
            u = F.normalize(u, dim=1, eps=self.eps)
        elif self.norm == "spatial":
            u = u * mask[:, None].to(u.dtype)                    # the norm sees valid cells only
            u = F.normalize(u.flatten(2), dim=2, eps=self.eps).view_as(u)
        return u * mask[:, None].to(u.dtype)


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if n and not list(m.children())]


def _auto_targets(cnn: nn.Module, kinds: tuple[type, ...]) -> list[str]:
    """Each layer of ``kinds`` in registration order, or the activation registered right
    after it (so the unit sees ``ReLU(fc(x))``, spec Step 2)."""
    leaves = _leaves(cnn)
    out = []
    for i, (name, mod) in enumerate(leaves):
        if isinstance(mod, kinds):
            nxt = leaves[i + 1] if i + 1 < len(leaves) else None
            out.append(nxt[0] if nxt is not None and isinstance(nxt[1], _ACTIVATIONS) else name)
    return out


class ModulatedCNN(nn.Module):
    """A frame CNN with early modulation units (eq. 2) after chosen layers.

    The wrapped ``cnn`` maps ``(R, *frame_shape)`` inputs to ``(R, D)`` features and is left
    as it is (its parameter names and forward); the units act through forward hooks on its
    layers, so any CNN can be wrapped (VGG16 up to fc7, C3D up to fc7, a tiny test CNN).
    Called directly, without :meth:`forward`, the CNN runs unmodulated.

    Each unit is :class:`EarlyModulation` then dropout. The targets are named by ``after``
    or found automatically: every ``nn.Linear`` (``at="fc"``) or every conv layer
    (``at="conv"``), or the activation registered right after it. ``input_channels > 0``
    also modulates the input itself, read as ``input_channels`` maps (precomputed conv
    features such as pool5: the conv placement for a CNN whose trunk ran offline).
    Dropout layers of the CNN itself are left alone (the paper's 0.75 replaces VGG's 0.5:
    remove the CNN's own dropouts for that setting).

    Args:
        cnn: the frame CNN. query_dim: width of ``f_s``. at: ``fc`` or ``conv``.
        after: submodule names of ``cnn`` to modulate (overrides ``at``).
        dropout: after each unit. input_channels: see above. frame_shape: reshape each
            ``(D_in,)`` input row to this before the CNN (``None``: rows as they come).
        out_dim: D (default: ``out_features`` of the CNN's last Linear).
        l2_normalize: L2-normalize each output row (as 2D-TAN's inputs are).
        modulate: ``False`` registers no unit (the plain CNN, for ablations).
    """

    def __init__(self, cnn: nn.Module, query_dim: int, *, at: str = "fc",
                 after: Sequence[str] | None = None, dropout: float = 0.75,
                 input_channels: int = 0, frame_shape: Sequence[int] | None = None,
                 out_dim: int | None = None, l2_normalize: bool = False, modulate: bool = True):
        super().__init__()
        if at not in ("fc", "conv"):
            raise ValueError(f"unknown placement {at!r} (fc, conv)")
        self.cnn = cnn
        self.frame_shape = tuple(frame_shape) if frame_shape is not None else None
        self.l2_normalize = l2_normalize
        self.input_channels = input_channels if modulate else 0
        modules = dict(cnn.named_modules())
        if not modulate:
            names: list[str] = []
        elif after is not None:
            names = list(after)
        else:
            names = _auto_targets(cnn, _FC if at == "fc" else _CONV)
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"the CNN has no submodule(s) {', '.join(unknown)}")
        if len(set(names)) != len(names):
            raise ValueError(f"a module follows several target layers ({names}); name the "
                             f"modules to modulate with after=")
        if modulate and not names and not input_channels:
            raise ValueError(f"the CNN has no {at} layer to modulate")
        if out_dim is None:
            fcs = [m for _, m in _leaves(cnn) if isinstance(m, nn.Linear)]
            if not fcs:
                raise ValueError("out_dim is needed for a CNN without a Linear layer")
            out_dim = fcs[-1].out_features
        self.out_dim = out_dim
        self.targets = tuple(names)
        widths = [_out_channels(modules[n], modules) for n in names]
        self.units = nn.ModuleList(EarlyModulation(query_dim, w) for w in widths)
        self.input_unit = (EarlyModulation(query_dim, input_channels) if self.input_channels
                           else None)
        self.dropout = Dropout(dropout)
        self._query: torch.Tensor | None = None
        for i, name in enumerate(names):
            modules[name].register_forward_hook(partial(self._modulate, i))

    def _modulate(self, index: int, module: nn.Module, inputs, output: torch.Tensor
                  ) -> torch.Tensor:
        if self._query is None:                       # the CNN called on its own
            return output
        channel_dim = 1 if output.dim() > 2 else -1
        return self.dropout(self.units[index](output, self._query, channel_dim))

    def forward(self, x: torch.Tensor, query: torch.Tensor, mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Features of the real steps of every video, modulated by its sentence.

        Args:
            x: ``(B, T, D_in)`` rows (or ``(B, T, *frame_shape)`` frames). query:
                ``f_s (B, Ds)``. mask: ``(B, T)`` bool real steps (``None``: all real).
        Returns:
            ``(B, T, D)``, zero at padded steps (the CNN does not run on them).
        """
        bsz, steps = x.shape[:2]
        if mask is None:
            mask = torch.ones(bsz, steps, dtype=torch.bool, device=x.device)
        rows = x[mask]                                                    # (R, ...)
        row_query = query[:, None].expand(bsz, steps, query.shape[-1])[mask]   # (R, Ds)
        if self.frame_shape is not None:
            rows = rows.reshape(rows.shape[0], *self.frame_shape)
        if self.input_unit is not None:
            maps = rows.reshape(rows.shape[0], self.input_channels, -1)
            rows = self.dropout(self.input_unit(maps, row_query, 1)).reshape(rows.shape)
        self._query = row_query
        try:
            feats = self.cnn(rows)
        finally:
            self._query = None
        feats = feats.reshape(feats.shape[0], -1)
        if self.l2_normalize:
            feats = F.normalize(feats, dim=-1)
        out = feats.new_zeros(bsz, steps, feats.shape[-1])
        out[mask] = feats
        return out


def _out_channels(module: nn.Module, modules: dict[str, nn.Module]) -> int:
    """Channels a target emits: its own (Linear / conv), else the layer before it."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, _CONV):
        return module.out_channels
    prev = None
    for _, m in modules.items():
        if m is module:
            break
        if isinstance(m, (nn.Linear, *_CONV)):
            prev = m
    if prev is None:
        raise ValueError(f"cannot tell how many channels {type(module).__name__} emits")
    return prev.out_features if isinstance(prev, nn.Linear) else prev.out_channels


def fc_stack(in_dim: int, width: int, layers: int, relu: bool = True,
             identity: bool = False) -> nn.Sequential:
    """``fc6 [-> relu6] -> fc7 [-> relu7] ...``: the FC layers of VGG16 / C3D (or the adapter).

    ``identity`` initializes every layer to ``W = I, b = 0`` (needs ``in_dim == width``).
    """
    parts: list[tuple[str, nn.Module]] = []
    for i in range(layers):
        fc = nn.Linear(in_dim if i == 0 else width, width)
        if identity:
            if in_dim != width:
                raise ValueError("an identity stack keeps the width")
            nn.init.eye_(fc.weight)
            nn.init.zeros_(fc.bias)
        parts.append((f"fc{6 + i}", fc))
        if relu:
            parts.append((f"relu{6 + i}", nn.ReLU()))
    return nn.Sequential(OrderedDict(parts))


def load_fc_weights(stack: nn.Module, path: str | Path) -> None:
    """Load pretrained ``fc6.*`` / ``fc7.*`` weights into :func:`fc_stack` layers."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read FC weights ({e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict with fc6.weight, fc6.bias, ...")
    try:
        stack.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: FC weights do not fit the fc_head layers: {e}") from e


def build_visual(cfg: LGNConfig, video_dim: int, query_dim: int) -> ModulatedCNN | None:
    """The in-model visual stack of ``cfg.em_impl`` (``None`` where there is none)."""
    if cfg.em_impl == "clip" or (cfg.em_impl == "adapter" and not cfg.em):
        return None
    if cfg.em_impl == "adapter":
        stack = fc_stack(video_dim, video_dim, cfg.em_layers, cfg.fc_relu, identity=True)
        return ModulatedCNN(stack, query_dim, at="fc", dropout=cfg.em_dropout)
    stack = fc_stack(video_dim, cfg.fc_dim, cfg.em_layers, cfg.fc_relu)
    if cfg.fc_weights is not None:
        load_fc_weights(stack, cfg.fc_weights)
    conv = cfg.em and cfg.em_at == "conv"
    if conv and video_dim % cfg.conv_channels:
        raise ConfigError(f"pool5 inputs of width {video_dim} are not {cfg.conv_channels} "
                          f"channel maps (model.conv_channels)")
    return ModulatedCNN(stack, query_dim, at="fc", after=[] if conv else None,
                        dropout=cfg.em_dropout, input_channels=cfg.conv_channels if conv else 0,
                        l2_normalize=True, modulate=cfg.em)


class LGN(TAN2D):
    """2D-TAN with early modulation and late guidance (outputs as :class:`TAN2D`).

    Args:
        cfg: the LGN config. video_dim: input feature width. word_dim: word vector width.
        input_steps: input steps per video (``data.num_clips``).
        visual: a frame CNN wrapped in :class:`ModulatedCNN` to use instead of the one
            ``cfg.em_impl`` builds (``ModulatedCNN.forward``'s input is ``batch.video_feats``).
    """

    def __init__(self, cfg: LGNConfig, *, video_dim: int, word_dim: int, input_steps: int,
                 visual: ModulatedCNN | None = None):
        if visual is None:
            visual = build_visual(cfg, video_dim, cfg.hidden_dim)
        super().__init__(
            video_dim=visual.out_dim if visual is not None else video_dim, word_dim=word_dim,
            hidden_dim=cfg.hidden_dim, num_clips=cfg.num_clips,
            pool_kernel=cfg.input_kernel(input_steps), scale_layers=cfg.scale_layers,
            proposal=cfg.proposal, kernel_size=cfg.kernel_size, num_layers=cfg.num_layers,
            lstm_layers=cfg.lstm_layers, lstm_hidden=cfg.lstm_hidden, tmin=cfg.tmin,
            tmax=cfg.tmax, dropout=cfg.dropout, iou_float64=cfg.iou_float64)
        self.visual = visual
        clip_em = cfg.em and cfg.em_impl == "clip"
        self.clip_unit = EarlyModulation(cfg.hidden_dim, cfg.hidden_dim) if clip_em else None
        self.clip_unit_dropout = Dropout(cfg.em_dropout)
        self.guidance = (LateGuidance(cfg.hidden_dim, cfg.hidden_dim, cfg.lg_norm)
                         if cfg.lg_k else None)
        first = cfg.num_layers - cfg.lg_k if cfg.lg_position == "last_k" else 0
        self.guided_layers = frozenset(range(first, first + cfg.lg_k))

    @classmethod
    def from_config(cls, cfg: LGNConfig, ctx: ModelContext) -> LGN:
        return cls(cfg, video_dim=ctx.video_dim, word_dim=ctx.word_dim, input_steps=ctx.num_clips)

    def encode_clips(self, batch: Batch, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Early modulation (eq. 2) inside the visual stack, then 2D-TAN's FrameAvgPool."""
        feats = batch.video_feats
        if self.visual is not None:
            feats = self.visual(feats, query, batch.video_mask)            # (B, T, D)
        h = self.frame.project(feats)                                      # (B, C, T)
        if self.clip_unit is not None:
            h = self.clip_unit_dropout(self.clip_unit(h, query, channel_dim=1))
        clips, clip_mask = self.frame.pool(h, batch.video_mask)
        return self.clip_dropout(clips), clip_mask

    def map_hook(self, query: torch.Tensor) -> LayerHook | None:
        """Late guidance (eq. 3) after the guided conv layers, α computed once."""
        if self.guidance is None:
            return None
        alpha = self.guidance.alpha(query)                                 # (B, C)

        def guide(i: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.guidance(x, alpha, mask) if i in self.guided_layers else x

        return guide


@register_model("lgn", LGNConfig)
def build_lgn(cfg: LGNConfig, ctx: ModelContext) -> LGN:
    return LGN.from_config(cfg, ctx)
