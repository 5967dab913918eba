"""The 2D temporal map of 2D-TAN (common spec 8.2), reusable by LGN.

Cell ``(a, b)`` of an ``N x N`` map is the moment that starts in clip ``a`` and ends in clip
``b`` (inclusive, ``a <= b``). The pieces, in the order a model uses them:

- :func:`moment_layers` / :func:`valid_cells`: which cells exist (dense or the sparse
  sampling of 2D-TAN given by its scale layers);
- :class:`PoolMomentMap` / :class:`ConvMomentMap`: clip features ``(B, C, N)`` -> moment
  features ``(B, C, N, N)`` (``proposal: pool | conv``);
- :class:`MapFusion`: Hadamard fusion with the sentence, L2-normalized over channels;
- :class:`MaskedConvStack`: the temporal adjacent network, with a per-layer hook;
- :func:`clip_layout`, :func:`cell_spans`, :func:`iou_map`, :func:`map_candidates`: the
  map <-> seconds geometry, the IoU targets and the decoded candidates.

Map masks are ``(B, N, N)`` bool tensors, True on cells that are valid for that video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from momentloc.spans import temporal_iou

if TYPE_CHECKING:
    from momentloc.models.base import Candidates

# (layer_index, x (B, C, H, W), mask (B, H, W) bool) -> x
LayerHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def moment_layers(num_clips: int, scale_layers: Sequence[int] | None = None
                  ) -> list[tuple[int, int]]:
    """The sampling of the map as a hierarchy of pooling layers, one ``(stride, length)`` each.

    Scale 0 has lengths ``1 .. n_0`` at every start. Scale ``s > 0`` has stride ``2^s``:
    its first layer pools 3 windows of the previous scale at stride 2 (length grows by
    ``2^s``), each further layer pools 2 neighbouring windows (length grows by ``2^s`` again).
    A layer with length L and stride S holds the cells ``(a, a + L - 1)`` for ``a`` a
    multiple of S with ``a + L <= N``. Layers with no cell left are dropped.

    Examples: ``scale_layers=None`` (= ``[N]``) gives every ``a <= b``; ``N = 64`` with
    ``[16, 8, 8]`` gives lengths 1-16 at every start, 18-32 (step 2) at even starts and
    36-64 (step 4) at starts divisible by 4.

    Returns:
        ``[(stride, length), ...]`` in hierarchy order (lengths increase).
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    scales = [num_clips] if scale_layers is None else list(scale_layers)
    if not scales or any(n < 1 for n in scales):
        raise ValueError(f"scale_layers must be positive layer counts, got {scale_layers}")
    out = []
    length = 0
    for scale, count in enumerate(scales):
        stride = 2 ** scale
        for _ in range(count):
            length += stride
            if length > num_clips:
                return out
            out.append((stride, length))
    return out


def _cell_index(num_clips: int, layers: list[tuple[int, int]]) -> torch.Tensor:
    """Flat indices ``a * N + b`` of the cells of every layer, concatenated in layer order."""
    parts = []
    for stride, length in layers:
        starts = torch.arange(0, num_clips - length + 1, stride)
        parts.append(starts * num_clips + starts + length - 1)
    return torch.cat(parts)


def valid_cells(num_clips: int, scale_layers: Sequence[int] | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``(N, N)`` bool mask of the cells the map samples (see :func:`moment_layers`).

    Cell counts: N = 16 dense: 136; N = 64 with ``[16, 8, 8]``: 1,104; N = 128 with
    ``[16, 8, 8, 8]``: 2,548.
    """
    mask = torch.zeros(num_clips * num_clips, dtype=torch.bool)
    mask[_cell_index(num_clips, moment_layers(num_clips, scale_layers))] = True
    return mask.view(num_clips, num_clips).to(device)


class _MomentMap(nn.Module):
    """Shared hierarchy walk: run one 1-D op per layer, scatter its outputs onto the map."""

    def __init__(self, num_clips: int, scale_layers: Sequence[int] | None):
        super().__init__()
        self.num_clips = num_clips
        self.layers = moment_layers(num_clips, scale_layers)
        self.register_buffer("cell_index", _cell_index(num_clips, self.layers), persistent=False)

    def step(self, i: int, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, N)`` clips -> ``(B, C, N, N)`` moment map, zero off the sampled cells."""
        bsz, dim, n = x.shape
        if n != self.num_clips:
            raise ValueError(f"moment map built for {self.num_clips} clips, got {n}")
        outs = []
        h = x
        for i in range(len(self.layers)):
            h = self.step(i, h)                       # (B, C, #starts of layer i)
            outs.append(h)
        flat = x.new_zeros(bsz, dim, n * n)
        flat = flat.index_copy(2, self.cell_index, torch.cat(outs, dim=2))
        return flat.view(bsz, dim, n, n)


class PoolMomentMap(_MomentMap):
    """``F_M[:, a, b] = max_{a <= i <= b} X[:, i]`` on the sampled cells (common spec 8.2 step 2).

    Built as 2D-TAN's max-pool hierarchy: each layer is one ``max_pool1d`` over the previous
    layer's windows (kernel 2 stride 1 within a scale, kernel 3 stride 2 at a new scale), so
    the whole map costs one pooling per length and no loop over cells.
    """

    def __init__(self, num_clips: int, scale_layers: Sequence[int] | None = None):
        super().__init__(num_clips, scale_layers)
        self._ops = [_layer_op(self.layers, i) for i in range(len(self.layers))]

    def step(self, i: int, h: torch.Tensor) -> torch.Tensor:
        kernel, stride = self._ops[i]
        return h if kernel == 1 else F.max_pool1d(h, kernel, stride)


class ConvMomentMap(_MomentMap):
    """The stacked-convolution variant (``proposal: conv``): the same hierarchy with a
    ``Conv1d(C, C, kernel, stride)`` per layer instead of the max (kernel 1 for length 1),
    without activations in between, as in the 2D-TAN release [gk]."""

    def __init__(self, dim: int, num_clips: int, scale_layers: Sequence[int] | None = None):
        super().__init__(num_clips, scale_layers)
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, k, s) for k, s in
            (_layer_op(self.layers, i) for i in range(len(self.layers))))

    def step(self, i: int, h: torch.Tensor) -> torch.Tensor:
        return self.convs[i](h)


def _layer_op(layers: list[tuple[int, int]], i: int) -> tuple[int, int]:
    """(kernel, stride) of the 1-D op that makes layer ``i`` from layer ``i - 1``."""
    if i == 0:
        return 1, 1
    return (3, 2) if layers[i][0] != layers[i - 1][0] else (2, 1)


class MapFusion(nn.Module):
    """Common spec 8.2 step 4: ``normalize_C(f_s[:, :, None, None] * Conv2d_1x1(F_M)) * mask``.

    The sentence vector arrives already projected (2D-TAN's single text Linear).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.map_proj = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, moment_map: torch.Tensor, query: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """``moment_map (B, C, N, N)``, ``query (B, C)``, ``mask (B, N, N)`` -> ``(B, C, N, N)``."""
        fused = query[:, :, None, None] * self.map_proj(moment_map)
        return F.normalize(fused, dim=1) * mask[:, None].to(fused.dtype)


class MaskedConvStack(nn.Module):
    """Temporal adjacent network (common spec 8.2 step 5): ``num_layers`` x (Conv2d K x K + ReLU).

    The first layer pads by ``num_layers * (K - 1) / 2`` so the last output is N x N again;
    intermediate maps are larger. After each layer the output is multiplied by ``1 / c``,
    where ``c`` is the number of valid input cells under the kernel (0 where c = 0), and the
    mask becomes ``c > 0``.

    A hook ``hook(layer_index, x, mask) -> x`` runs after each layer's reweighting (LGN's
    late guidance uses it on the last k layers); ``mask`` is that layer's ``(B, H, W)``
    bool mask.

    Args:
        dim: channels C. kernel_size: K (odd). num_layers: L (0 = identity).
    """

    def __init__(self, dim: int, kernel_size: int, num_layers: int):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"the map conv kernel must be odd, got {kernel_size}")
        padding = num_layers * (kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(dim, dim, kernel_size, padding=padding if i == 0 else 0)
            for i in range(num_layers))
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, hook: LayerHook | None = None
                ) -> torch.Tensor:
        """``x (B, C, N, N)``, ``mask (B, N, N)`` bool -> ``(B, C, N, N)``."""
        m = mask[:, None].to(x.dtype)                                     # (B, 1, H, W)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            count = F.conv2d(m, self.ones.to(x.dtype), padding=conv.padding).round()
            m = (count > 0).to(x.dtype)
            x = x * (m / count.clamp_min(1.0))
            if hook is not None:
                x = hook(i, x, m[:, 0] > 0)
        return x


def clip_layout(durations: torch.Tensor, num_clips: int, video_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each map clip lies in seconds, and which clips hold real video.

    The input has T steps (``video_mask``'s length), each map clip pools ``k = T / N`` of
    them. The M real steps of a video (a prefix, as the ``pad`` resampling writes them)
    cover its whole duration, so step j spans ``[j, j + 1] * T_sec / M``. Without padding
    (M = T) clip i spans ``[i, i + 1] * T_sec / N`` (common spec 3.1).

    Args:
        durations: ``(B,)`` seconds. video_mask: ``(B, T)`` bool, T a multiple of N
            (``None``: every step real).
    Returns:
        ``bounds (B, N + 1)`` seconds (clip i spans ``[bounds[i], bounds[i+1]]``, clipped to
        the duration) and ``clip_mask (B, N)`` bool.
    """
    dur = durations.to(torch.float32)
    steps = torch.arange(num_clips + 1, device=dur.device, dtype=dur.dtype)   # (N+1,)
    if video_mask is None:
        bounds = steps[None, :] * dur[:, None] / num_clips
        return bounds, torch.ones(dur.shape[0], num_clips, dtype=torch.bool, device=dur.device)
    t = video_mask.shape[1]
    if t % num_clips:
        raise ValueError(f"{t} input steps are not a multiple of the map size {num_clips}")
    k = t // num_clips
    real = video_mask.sum(1).to(dur.dtype).clamp_min(1.0)[:, None]          # (B, 1) M
    bounds = torch.minimum(steps[None, :] * k, real) * dur[:, None] / real
    bounds = torch.minimum(bounds, dur[:, None])
    # an unpadded video takes the 2D-TAN release's float32 rule i * d / N exactly
    bounds = torch.where(real == t, steps[None, :] * dur[:, None] / num_clips, bounds)
    return bounds, steps[None, :-1] * k < real


def cell_spans(bounds: torch.Tensor) -> torch.Tensor:
    """``(B, N + 1)`` clip bounds -> ``(B, N, N, 2)`` seconds: cell (a, b) is
    ``[bounds[a], bounds[b + 1]]`` (meaningful where a <= b)."""
    n = bounds.shape[1] - 1
    start = bounds[:, :-1, None].expand(-1, n, n)
    end = bounds[:, None, 1:].expand(-1, n, n)
    return torch.stack([start, end], dim=-1)


def map_mask(cells: torch.Tensor, clip_mask: torch.Tensor) -> torch.Tensor:
    """Sampled cells ``(N, N)`` restricted to each video's real clips -> ``(B, N, N)``.

    A cell is kept when both its start and end clip hold real video, so no moment reaches
    past the last real clip.
    """
    return cells[None] & clip_mask[:, :, None] & clip_mask[:, None, :]


def iou_map(spans: torch.Tensor, gt_spans: torch.Tensor, float64: bool = True) -> torch.Tensor:
    """IoU of every cell with its sample's ground truth (the target ``o`` of 8.2 step 7).

    Args:
        spans: ``(B, N, N, 2)`` cell seconds (:func:`cell_spans`). gt_spans: ``(B, 2)`` seconds.
        float64: compute in float64 from the times in ``spans``' dtype and round once, as the
            2D-TAN release makes its ``map_gt`` (cell times in float32, the ground truth
            rounded to float32, IoU in float64); False computes in ``spans``' dtype.
    Returns:
        ``(B, N, N)`` IoU in [0, 1], in ``spans``' dtype.
    """
    gt = gt_spans.to(spans.dtype)[:, None, None, :]
    if not float64:
        return temporal_iou(spans, gt)
    return temporal_iou(spans.double(), gt.double()).to(spans.dtype)


def map_candidates(scores: torch.Tensor, spans: torch.Tensor, mask: torch.Tensor,
                   cells: torch.Tensor) -> Candidates:
    """Every upper-triangle cell of a score map as a candidate (8.2 step 9, before NMS).

    The sampled cells come first (K of them, in layout order), then the other cells
    ``a <= b`` in row-major order, always invalid: the standard NMS never picks them, while
    the 2D-TAN release's decoding (``eval.protocol: tan2d``) ranks them last with score 0.

    Args:
        scores: ``(B, N, N)``. spans: ``(B, N, N, 2)`` seconds. mask: ``(B, N, N)`` bool
            (per-video valid cells). cells: ``(N, N)`` bool, the sampled cells.
    Returns:
        :class:`Candidates` with ``spans (B, U, 2)``, ``scores (B, U)``, ``valid (B, U)``,
        U = N (N + 1) / 2; ``valid`` is False past the first K.
    """
    # Imported here: importing momentloc.models imports the families, which import this module.
    from momentloc.models.base import Candidates

    n = cells.shape[0]
    upper = torch.ones(n, n, dtype=torch.bool, device=cells.device).triu()
    idx = torch.cat([cells.flatten().nonzero().squeeze(1),
                     (upper & ~cells).flatten().nonzero().squeeze(1)])
    sampled = cells.flatten()[idx]
    return Candidates(spans=spans.flatten(1, 2)[:, idx],
                      scores=scores.flatten(1)[:, idx] * sampled.to(scores.dtype),
                      valid=mask.flatten(1)[:, idx] & sampled)
