"""A planted-signal grounding toy set for learning tests (STYLE.md section 6).

Each video has two segments carrying a query's embedding: the target carries the embedding
of its own query, a distractor carries another query's, so a model must read the query to
choose. Spans are random, so the moment-position prior stays weak.
"""

from __future__ import annotations

import torch

from momentloc.data.batch import Batch
from momentloc.spans import temporal_iou


def make_planted(n: int, num_clips: int = 16, video_dim: int = 16, word_dim: int = 8,
                 max_words: int = 4, vocab: int = 12, seed: int = 0, pad_videos: bool = False
                 ) -> Batch:
    """``n`` samples; with ``pad_videos`` some videos have fewer real clips than ``num_clips``."""
    g = torch.Generator().manual_seed(seed)
    words = torch.randn(vocab, word_dim, generator=torch.Generator().manual_seed(1234))
    proj = torch.randn(word_dim, video_dim, generator=torch.Generator().manual_seed(4321))
    n_words = torch.randint(2, max_words + 1, (n,), generator=g)
    qmask = torch.arange(max_words)[None] < n_words[:, None]
    ids = torch.randint(0, vocab, (n, max_words), generator=g)
    qfeats = words[ids] * qmask[..., None]
    other = torch.randint(0, vocab, (n, max_words), generator=g)
    signal = (words[ids] * qmask[..., None]).sum(1) / n_words[:, None] @ proj           # (n, Dv)
    distract = (words[other] * qmask[..., None]).sum(1) / n_words[:, None] @ proj
    real = torch.full((n,), num_clips)
    if pad_videos:
        real = torch.randint(num_clips // 2, num_clips + 1, (n,), generator=g)
    vmask = torch.arange(num_clips)[None] < real[:, None]
    feats = 0.5 * torch.randn(n, num_clips, video_dim, generator=g)
    durations = 20 + 20 * torch.rand(n, generator=g)
    spans = torch.zeros(n, 2)
    steps = torch.arange(num_clips)
    for b in range(n):                       # data generation only, not a model hot path
        m = int(real[b])
        length = int(torch.randint(2, max(3, m // 3), (1,), generator=g))
        s = int(torch.randint(0, m - length + 1, (1,), generator=g))
        inside = (steps >= s) & (steps < s + length)
        feats[b, inside] += signal[b]
        free = [i for i in range(m - length + 1) if i + length <= s or i >= s + length]
        if free:
            d0 = free[int(torch.randint(0, len(free), (1,), generator=g))]
            feats[b, (steps >= d0) & (steps < d0 + length)] += distract[b]
        step = durations[b] / m
        spans[b] = torch.tensor([s * step, (s + length) * step])
    feats = feats * vmask[..., None]
    ids_out = torch.where(qmask, ids + 2, 0)
    return Batch(feats, vmask, qfeats, ids_out, qmask, spans, durations,
                 [{"query_id": str(i)} for i in range(n)])


def subset(batch: Batch, idx: torch.Tensor) -> Batch:
    return Batch(batch.video_feats[idx], batch.video_mask[idx], batch.query_feats[idx],
                 batch.query_ids[idx], batch.query_mask[idx], batch.spans[idx],
                 batch.durations[idx], [batch.meta[int(i)] for i in idx])


def recall1(model, batch: Batch, thresh: float = 0.5) -> float:
    """R@1 IoU>=thresh of a model's top candidate."""
    model.eval()
    with torch.no_grad():
        cand = model.candidates(model(batch), batch)
    model.train()
    iou = temporal_iou(cand.spans[:, 0], batch.spans)
    return float((iou >= thresh).float().mean())


def prior_recall1(train: Batch, test: Batch, thresh: float = 0.5) -> float:
    """R@1 of the single best normalized span of the training set (a prior-only baseline)."""
    norm = train.spans / train.durations[:, None]
    grid = torch.linspace(0, 1, 21)
    cands = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    cands = cands[cands[:, 0] < cands[:, 1]]
    hits = (temporal_iou(cands[:, None], norm[None]) >= thresh).float().mean(1)
    best = cands[hits.argmax()]
    test_iou = temporal_iou(best[None] * test.durations[:, None], test.spans)
    return float((test_iou >= thresh).float().mean())


def train_steps(model, data: Batch, steps: int, batch_size: int = 32, lr: float = 3e-3,
                weights: dict | None = None, seed: int = 0) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        b = subset(data, idx)
        terms = model.loss(model(b), b)
        loss = sum((weights or {}).get(k, 1.0) * v for k, v in terms.items())
        opt.zero_grad()
        loss.backward()
        opt.step()


def one_step(model, batch: Batch, loss_weights: dict[str, float]) -> tuple[dict, list[str]]:
    """One Adam step on ``batch``: ``(loss terms, names of parameters the step left unchanged)``.

    Key-projection biases are left out of the second list: such a bias shifts every logit of
    a query equally, which the softmax over keys ignores, so its gradient is zero up to
    rounding and Adam leaves it in place.
    """
    terms = model.loss(model(batch), batch)
    loss = sum(loss_weights.get(k, 1.0) * v for k, v in terms.items())
    assert torch.isfinite(loss), terms
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    loss.backward()
    opt.step()
    stuck = [n for n, p in model.named_parameters()
             if torch.equal(before[n], p) and not n.endswith("k_proj.bias")]
    return terms, stuck
