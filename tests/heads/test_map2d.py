"""The 2D temporal map: sampled cells, moment features, conv stack, geometry, candidates."""

import math

import pytest
import torch

from momentloc.heads.map2d import (
    ConvMomentMap,
    MapFusion,
    MaskedConvStack,
    PoolMomentMap,
    cell_spans,
    clip_layout,
    iou_map,
    map_candidates,
    map_mask,
    moment_layers,
    valid_cells,
)
from momentloc.models.layers import FrameAvgPool
from momentloc.spans import temporal_iou

SPARSE = [(16, None, 136), (16, [16], 136), (64, [16, 8, 8], 1104), (128, [16, 8, 8, 8], 2548)]


@pytest.mark.parametrize("n,scales,count", SPARSE)
def test_cell_counts(n, scales, count):
    cells = valid_cells(n, scales)
    assert cells.shape == (n, n) and int(cells.sum()) == count
    assert not cells.tril(-1).any()                       # only a <= b


def test_sparse_rule_n64():
    # common spec 8.2 step 2, written out as a table of (length, start stride)
    rule = {length: 1 for length in range(1, 17)}
    rule.update({length: 2 for length in range(18, 33, 2)})
    rule.update({length: 4 for length in range(36, 65, 4)})
    cells = valid_cells(64, [16, 8, 8])
    expected = torch.zeros(64, 64, dtype=torch.bool)
    for length, stride in rule.items():
        for a in range(0, 64 - length + 1, stride):
            expected[a, a + length - 1] = True
    assert torch.equal(cells, expected)
    assert cells[2, 2 + 18 - 1] and not cells[1, 1 + 18 - 1] and not cells[0, 16]
    assert cells[4, 4 + 36 - 1] and not cells[2, 2 + 36 - 1] and cells[0, 63]


def test_moment_layers_drop_lengths_past_the_map():
    assert moment_layers(8, [4, 4]) == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 6), (2, 8)]
    assert moment_layers(4) == [(1, 1), (1, 2), (1, 3), (1, 4)]
    with pytest.raises(ValueError):
        moment_layers(8, [0])


def _naive_pool(x, cells):
    bsz, dim, n = x.shape
    out = torch.zeros(bsz, dim, n, n)
    for a in range(n):
        for b in range(a, n):
            if cells[a, b]:
                out[:, :, a, b] = x[:, :, a:b + 1].amax(dim=2)
    return out


@pytest.mark.parametrize("n,scales,count", SPARSE)
def test_pool_map_equals_naive_loop(n, scales, count):
    torch.manual_seed(0)
    x = torch.randn(2, 3, n)
    fm = PoolMomentMap(n, scales)(x)
    assert torch.equal(fm, _naive_pool(x, valid_cells(n, scales)))


@pytest.mark.parametrize("n,scales", [(20, [1, 4]), (20, [2, 3, 1]), (11, [3, 3]), (1, None)])
def test_pool_map_unusual_hierarchies(n, scales):
    torch.manual_seed(0)
    x = torch.randn(2, 3, n)
    cells = valid_cells(n, scales)
    assert torch.equal(PoolMomentMap(n, scales)(x), _naive_pool(x, cells))
    assert int(cells.sum()) == sum((n - length) // stride + 1
                                   for stride, length in moment_layers(n, scales))


def test_conv_map_hierarchy():
    torch.manual_seed(0)
    n, dim = 8, 4
    conv_map = ConvMomentMap(dim, n, [4, 2])
    x = torch.randn(2, dim, n)
    fm = conv_map(x)
    cells = valid_cells(n, [4, 2])
    assert fm.shape == (2, dim, n, n)
    assert (fm[:, :, ~cells] == 0).all()
    diag = conv_map.convs[0](x)                          # length 1: Conv1d k=1 per clip
    assert torch.allclose(fm.diagonal(dim1=2, dim2=3), diag, atol=1e-6)
    w, b = conv_map.convs[1].weight, conv_map.convs[1].bias   # length 2 from two length-1 cells
    pair = w[:, :, 0] @ diag[:, :, 0].T + w[:, :, 1] @ diag[:, :, 1].T + b[:, None]
    assert torch.allclose(fm[:, :, 0, 1], pair.T, atol=1e-5)
    fm.sum().backward()
    assert all(p.grad is not None for p in conv_map.parameters())


def test_frame_avg_pool_masked():
    torch.manual_seed(0)
    pool = FrameAvgPool(5, 3, kernel_size=2)
    x = torch.randn(2, 8, 5)
    clips, clip_mask = pool(x)
    h = pool.project(x)
    assert torch.allclose(clips, torch.nn.functional.avg_pool1d(h, 2, 2))
    assert clip_mask.all()
    mask = torch.tensor([[True] * 8, [True] * 3 + [False] * 5])
    garbage = x.clone()
    garbage[1, 3:] = 100.0
    clips, clip_mask = pool(garbage, mask)
    assert clip_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert torch.allclose(clips[1, :, 1], h[1, :, 2])      # half-padded clip: its real step
    assert (clips[1, :, 2:] == 0).all()
    with pytest.raises(ValueError, match="multiple"):
        pool(torch.randn(1, 7, 5))


def test_conv_stack_reweighting_and_hook():
    n = 5
    stack = MaskedConvStack(1, kernel_size=3, num_layers=2)
    for conv in stack.convs:
        torch.nn.init.ones_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    mask = valid_cells(n)[None]
    seen = []

    def hook(i, x, m):
        seen.append((i, tuple(x.shape), tuple(m.shape), int(m.sum())))
        return x

    out = stack(mask[:, None].float(), mask, hook=hook)
    # all-ones kernels on a 0/1 map average the valid cells: 1 wherever any is in reach
    assert out.shape == (1, 1, n, n)
    assert torch.allclose(out[0, 0], torch.ones(n, n))
    assert [s[:3] for s in seen] == [(0, (1, 1, 7, 7), (1, 7, 7)), (1, (1, 1, n, n), (1, n, n))]
    # the mask grows by one cell around the upper triangle (plus the 2-cell padding ring)
    assert seen[0][3] == int(torch.nn.functional.conv2d(
        torch.nn.functional.pad(mask[:, None].float(), (2, 2, 2, 2)), torch.ones(1, 1, 3, 3),
        padding=1).gt(0).sum())
    zeroed = stack(mask[:, None].float(), mask, hook=lambda i, x, m: x * 0 if i == 1 else x)
    assert (zeroed == 0).all()
    with pytest.raises(ValueError):
        MaskedConvStack(4, kernel_size=4, num_layers=2)


def test_fusion_is_unit_norm_on_valid_cells():
    torch.manual_seed(0)
    fusion = MapFusion(6)
    mask = valid_cells(4)[None].expand(2, 4, 4)
    out = fusion(torch.randn(2, 6, 4, 4), torch.randn(2, 6), mask)
    norms = out.norm(dim=1)
    assert torch.allclose(norms[mask], torch.ones(int(mask.sum())), atol=1e-5)
    assert (norms[~mask] == 0).all()


def test_clip_layout_plain_and_padded():
    bounds, clip_mask = clip_layout(torch.tensor([8.0]), 4)
    assert bounds.tolist() == [[0.0, 2.0, 4.0, 6.0, 8.0]] and clip_mask.all()
    # T = 8 steps, 4 clips of 2 steps, 5 real steps over 10 s: a step lasts 2 s
    video_mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    bounds, clip_mask = clip_layout(torch.tensor([10.0, 8.0]), 4, video_mask)
    assert torch.allclose(bounds, torch.tensor([[0.0, 4.0, 8.0, 10.0, 10.0],
                                                [0.0, 2.0, 4.0, 6.0, 8.0]]))
    assert clip_mask.tolist() == [[True, True, True, False], [True] * 4]
    mask = map_mask(valid_cells(4), clip_mask)
    assert int(mask[0].sum()) == 6 and int(mask[1].sum()) == 10
    with pytest.raises(ValueError, match="multiple"):
        clip_layout(torch.tensor([10.0]), 3, video_mask[:1])


def test_iou_map_equals_naive_loop():
    torch.manual_seed(0)
    n = 6
    durations = torch.tensor([12.0, 30.0, 7.5])
    gt = torch.sort(torch.rand(3, 2), dim=1).values * durations[:, None]
    bounds, _ = clip_layout(durations, n)
    ious = iou_map(cell_spans(bounds), gt)
    for i in range(3):
        t = durations[i].item()
        s, e = gt[i].tolist()
        for a in range(n):
            for b in range(a, n):
                cs, ce = a * t / n, (b + 1) * t / n
                inter = max(0.0, min(e, ce) - max(s, cs))
                union = max(e, ce) - min(s, cs)
                assert math.isclose(ious[i, a, b].item(), inter / union, abs_tol=1e-5)
    # golden: cell (1, 2) of a 4-clip 8 s video is [2, 6]; with GT [3, 7] IoU = 3 / 5
    bounds, _ = clip_layout(torch.tensor([8.0]), 4)
    assert iou_map(cell_spans(bounds), torch.tensor([[3.0, 7.0]]))[0, 1, 2].item() == \
        pytest.approx(0.6)


def test_map_candidates():
    n = 64
    cells = valid_cells(n, [16, 8, 8])
    bounds, clip_mask = clip_layout(torch.tensor([100.0, 50.0]), n)
    clip_mask[1, 40:] = False
    mask = map_mask(cells, clip_mask)
    scores = torch.rand(2, n, n)
    cand = map_candidates(scores, cell_spans(bounds), mask, cells)
    upper = n * (n + 1) // 2                      # every cell a <= b; the 1,104 sampled first
    assert cand.spans.shape == (2, upper, 2) and cand.scores.shape == cand.valid.shape == (2, upper)
    assert cand.valid[0, :1104].all() and not cand.valid[:, 1104:].any()
    assert int(cand.valid[1].sum()) == int(mask[1].sum()) < 1104
    assert (cand.scores[:, 1104:] == 0).all()     # unsampled cells score 0 (ranked last by tan2d)
    # the unsampled cells in row-major order, each once
    a_b = torch.stack([cand.spans[0, 1104:, 0] * n / 100, cand.spans[0, 1104:, 1] * n / 100 - 1])
    flat = (a_b[0].round() * n + a_b[1].round()).long()
    assert torch.equal(flat, flat.sort().values) and len(set(flat.tolist())) == upper - 1104
    assert (cand.spans[..., 0] <= cand.spans[..., 1]).all() and (cand.spans >= 0).all()
    assert (cand.spans[1] <= 50.0).all() and (cand.spans[0] <= 100.0).all()
    best = cand.scores[0].argmax()
    a, b = (scores[0] * cells).flatten().argmax().item() // n, \
        (scores[0] * cells).flatten().argmax().item() % n
    assert torch.allclose(cand.spans[0, best], torch.tensor([a * 100 / n, (b + 1) * 100 / n]))


def test_iou_map_float64_rounds_once():
    """float64=True (the 2D-TAN release's map_gt) is the float64 IoU of the float32 times
    rounded once; float64=False stays in float32. They differ by at most one ulp, and do differ."""
    g = torch.Generator().manual_seed(0)
    dur = 10 + 100 * torch.rand(64, generator=g)
    a, b = torch.rand(64, generator=g), torch.rand(64, generator=g)
    gt = torch.stack([torch.minimum(a, b), torch.maximum(a, b)], -1) * dur[:, None]
    bounds, _ = clip_layout(dur, 16)
    spans = cell_spans(bounds)
    exact = iou_map(spans, gt)
    single = iou_map(spans, gt, float64=False)
    want = temporal_iou(spans.double(), gt[:, None, None].double()).float()
    assert exact.dtype == single.dtype == torch.float32 and torch.equal(exact, want)
    assert torch.equal(single, temporal_iou(spans, gt[:, None, None]))
    ulp = torch.finfo(torch.float32).eps
    assert (exact - single).abs().max() <= ulp and (exact != single).any()
