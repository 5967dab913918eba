"""Hand-sized padded batches for the model unit tests (shapes, masks, padding invariance)."""

from __future__ import annotations

import torch

from momentloc.data.batch import Batch


def padded_batch(b: int, t: int, lq: int, video_dim: int, word_dim: int, seed: int = 0,
                 real_t=(16, 10), real_q=(6, 4)) -> Batch:
    """``b`` (at most 3) random samples padded to ``t`` steps and ``lq`` words; sample ``i``
    has ``real_t[i]`` real steps and ``real_q[i]`` real words, and a fixed relative span."""
    g = torch.Generator().manual_seed(seed)
    vmask = torch.arange(t)[None] < torch.tensor(real_t[:b])[:, None]
    qmask = torch.arange(lq)[None] < torch.tensor(real_q[:b])[:, None]
    durations = 10 + 20 * torch.rand(b, generator=g)
    spans = torch.tensor([[0.2, 0.6], [0.1, 0.5], [0.5, 0.9]])[:b] * durations[:, None]
    return Batch(torch.randn(b, t, video_dim, generator=g) * vmask[..., None], vmask,
                 torch.randn(b, lq, word_dim, generator=g) * qmask[..., None],
                 torch.ones(b, lq, dtype=torch.long) * qmask, qmask, spans, durations,
                 [{"query_id": str(i)} for i in range(b)])


def crop(batch: Batch, i: int) -> Batch:
    """Sample ``i`` alone, cut to its real length (no padding at all)."""
    t, lq = int(batch.video_mask[i].sum()), int(batch.query_mask[i].sum())
    return Batch(batch.video_feats[i:i + 1, :t], batch.video_mask[i:i + 1, :t],
                 batch.query_feats[i:i + 1, :lq], batch.query_ids[i:i + 1, :lq],
                 batch.query_mask[i:i + 1, :lq], batch.spans[i:i + 1], batch.durations[i:i + 1],
                 batch.meta[i:i + 1])


def batch_of_lengths(video_lens, query_lens, steps=16, words=6, video_dim=12, word_dim=10,
                     seed=0, nonnegative_video=False) -> Batch:
    """One sample per entry of ``video_lens`` / ``query_lens`` (real steps and words), padded
    to ``steps`` and ``words``, with a random span; ``nonnegative_video`` draws the clip
    features from [0, 1) (post-ReLU features) instead of a standard normal."""
    g = torch.Generator().manual_seed(seed)
    bsz = len(video_lens)
    video_mask = torch.arange(steps)[None] < torch.tensor(video_lens)[:, None]
    query_mask = torch.arange(words)[None] < torch.tensor(query_lens)[:, None]
    durations = 10.0 + 20.0 * torch.rand(bsz, generator=g)
    spans = torch.sort(torch.rand(bsz, 2, generator=g), dim=1).values * durations[:, None]
    draw = torch.rand if nonnegative_video else torch.randn
    return Batch(
        video_feats=draw(bsz, steps, video_dim, generator=g) * video_mask[..., None],
        video_mask=video_mask,
        query_feats=torch.randn(bsz, words, word_dim, generator=g) * query_mask[..., None],
        query_ids=(torch.arange(words)[None] + 2) * query_mask,
        query_mask=query_mask, spans=spans, durations=durations,
        meta=[{"query_id": str(i)} for i in range(bsz)])


def check_loss_and_candidates(model, out: dict, batch: Batch, terms: set[str]) -> None:
    """The loss has exactly ``terms``, all finite; backward reaches every parameter; every
    sample has a valid candidate and all candidates lie inside ``[0, duration]``."""
    got = model.loss(out, batch)
    assert set(got) == terms and all(torch.isfinite(v) for v in got.values())
    sum(got.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    c = model.candidates(out, batch)
    assert c.valid.any(1).all()
    assert (c.spans >= 0).all() and (c.spans <= batch.durations[:, None, None] + 1e-4).all()
