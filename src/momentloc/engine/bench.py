"""Speed and memory at a preset's real sizes, on random inputs (``momentloc bench``)."""

from __future__ import annotations

import math
import resource
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from momentloc.config.schema import ExperimentConfig
from momentloc.data.batch import Batch
from momentloc.data.dataset import Sample, collate
from momentloc.models.base import ModelContext
from momentloc.models.registry import create_model
from momentloc.spans import batched_nms

# Input widths by convention when a preset states none (data.feature_dim = 0).
DEFAULT_VIDEO_DIM = 500
WORD_DIM = 300
VOCAB = 10000


def bench_context(cfg: ExperimentConfig, video_dim: int | None = None) -> ModelContext:
    """The ModelContext a preset implies: input width from data.pca_dim / data.feature_dim."""
    dim = video_dim or cfg.data.pca_dim or cfg.data.feature_dim or DEFAULT_VIDEO_DIM
    return ModelContext(video_dim=dim, word_dim=WORD_DIM, num_clips=cfg.data.num_clips,
                        max_query_len=cfg.data.max_query_len, vocab_size=VOCAB,
                        word_vectors=torch.randn(VOCAB, WORD_DIM) * 0.3)


def count_parameters(cfg: ExperimentConfig, video_dim: int | None = None) -> int:
    """Parameters of ``cfg``'s model at the preset's sizes (built, never run)."""
    model = create_model(cfg.model_name, cfg.model, bench_context(cfg, video_dim))
    return sum(p.numel() for p in model.parameters())


def random_batch(ctx: ModelContext, batch_size: int, device: torch.device | str = "cpu",
                 seed: int = 0, pad_video: bool = False) -> Batch:
    """A batch of random inputs of the context's sizes: queries of varied lengths, spans inside
    durations of 20–200 s; with ``pad_video`` the videos have varied valid lengths too."""
    g = torch.Generator().manual_seed(seed)
    b, t, lq = batch_size, ctx.num_clips, ctx.max_query_len
    qlen = torch.randint(max(1, lq // 2), lq + 1, (b,), generator=g)
    qlen[0] = lq
    query_mask = torch.arange(lq)[None] < qlen[:, None]
    vlen = torch.randint(max(1, t // 2), t + 1, (b,), generator=g) if pad_video else torch.full((b,), t)
    vlen[0] = t
    video_mask = torch.arange(t)[None] < vlen[:, None]
    ids = torch.randint(2, ctx.vocab_size, (b, lq), generator=g) * query_mask
    wv = ctx.word_vectors if ctx.word_vectors is not None else torch.randn(ctx.vocab_size, ctx.word_dim,
                                                                           generator=g)
    durations = 20 + 180 * torch.rand(b, generator=g)
    valid_dur = durations * vlen / t
    a, c = torch.rand(b, generator=g), torch.rand(b, generator=g)
    spans = torch.stack([torch.minimum(a, c), torch.maximum(a, c)], -1) * valid_dur[:, None]
    return Batch(
        video_feats=torch.randn(b, t, ctx.video_dim, generator=g) * video_mask[..., None],
        video_mask=video_mask, query_feats=wv[ids] * query_mask[..., None], query_ids=ids,
        query_mask=query_mask, spans=spans, durations=durations,
        meta=[{"query_id": str(i), "video_id": f"v{i}", "query": "", "annotator_spans": []}
              for i in range(b)],
    ).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> tuple[str, float]:
    if device.type == "cuda":
        return "peak GPU memory (MiB)", torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "peak process RSS (MiB)", rss / (2**20 if sys.platform == "darwin" else 2**10)


def run_bench(cfg: ExperimentConfig, device: torch.device, steps: int = 10, warmup: int = 2,
              batch_size: int | None = None, video_dim: int | None = None) -> dict:
    """Train steps/s and inference queries/s of ``cfg``'s model at the preset's sizes (the
    training step is the trainer's: forward, loss, backward, the preset's optimizer)."""
    from momentloc.engine.optim import build_optimizer
    from momentloc.engine.runtime import autocast, progress
    from momentloc.engine.trainer import weighted_loss

    ctx = bench_context(cfg, video_dim)
    bsz = batch_size or cfg.train.batch_size
    model = create_model(cfg.model_name, cfg.model, ctx).to(device)
    opt = build_optimizer(model.parameters(), cfg.optim)
    batch = random_batch(ctx, bsz, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    bar = progress(total=2 * (warmup + steps), desc=f"bench {cfg.model_name} (train, inference)",
                   unit="step")
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with autocast(device, cfg.train.amp):
            out = model(batch)
            loss = weighted_loss(model.loss(out, batch), cfg.model.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update()
    _sync(device)
    train_s = (time.perf_counter() - t0) / steps
    model.eval()
    with torch.no_grad():
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            with autocast(device, cfg.train.amp):
                out = model(batch)
            cands = model.candidates(out, batch)
            batched_nms(cands.spans.float(), cands.scores.float(), cfg.eval.nms_thresh,
                        cfg.eval.top_k, cands.valid)
            bar.update()
        _sync(device)
    bar.close()
    infer_s = (time.perf_counter() - t0) / steps
    mem_name, mem = _peak_mib(device)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "model": cfg.model_name, "device": str(device), "batch_size": bsz,
        "num_clips": ctx.num_clips, "video_dim": ctx.video_dim, "max_query_len": ctx.max_query_len,
        "num_params": n_params, "train_step_ms": 1000 * train_s, "train_samples_per_s": bsz / train_s,
        "inference_queries_per_s": bsz / infer_s, mem_name: mem, "threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------- one epoch
# (train, test) queries of each benchmark as the presets use it (docs/data.md).
SPLIT_SIZES = {
    "charades-sta": (12408, 3720), "charades-sta-vgg": (12408, 3720),
    "activitynet-captions": (37421, 17031), "tacos": (9790, 4001), "didemo": (33005, 4021),
}


class RandomGroundingSet(Dataset):
    """``n`` random samples of a context's sizes, as a dataset yields them (numpy arrays, one
    :class:`Sample` per query): videos drawn from a pool (queries share videos), query lengths
    from half to all of ``max_query_len`` words, spans inside durations of 20-200 s; with
    ``pad_video`` videos have 50-100% real clips."""

    def __init__(self, ctx: ModelContext, n: int, seed: int = 0, pad_video: bool = False,
                 pool: int = 64):
        rng = np.random.default_rng(seed)
        t, lq = ctx.num_clips, ctx.max_query_len
        self.n = n
        self.videos = rng.standard_normal((min(pool, n), t, ctx.video_dim), dtype=np.float32)
        vlen = rng.integers(max(1, t // 2), t + 1, len(self.videos)) if pad_video \
            else np.full(len(self.videos), t)
        self.masks = np.arange(t)[None] < vlen[:, None]
        self.videos *= self.masks[..., None]
        self.word_vectors = (ctx.word_vectors.numpy() if ctx.word_vectors is not None
                             else rng.standard_normal((ctx.vocab_size, ctx.word_dim), dtype=np.float32))
        self.qlen = rng.integers(max(1, lq // 2), lq + 1, n)
        self.ids = rng.integers(2, ctx.vocab_size, (n, lq))
        self.durations = 20 + 180 * rng.random(n)
        ab = np.sort(rng.random((n, 2)), 1) * (self.durations * vlen[np.arange(n) % len(vlen)] / t)[:, None]
        self.spans = ab

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        v = i % len(self.videos)
        ids = self.ids[i, :self.qlen[i]]
        return Sample(video_feats=self.videos[v], video_mask=self.masks[v], query_ids=ids,
                      query_feats=self.word_vectors[ids], span=(float(self.spans[i, 0]),
                                                                float(self.spans[i, 1])),
                      duration=float(self.durations[i]),
                      meta={"query_id": f"q{i}", "video_id": f"v{v}", "query": "",
                            "annotator_spans": []})


class _TimedModel(nn.Module):
    """A model whose ``forward`` and ``candidates`` calls add up their wall time."""

    def __init__(self, model: nn.Module, device: torch.device):
        super().__init__()
        self.inner, self.device, self.forward_s, self.candidates_s = model, device, 0.0, 0.0

    def forward(self, batch):
        t0 = time.perf_counter()
        out = self.inner(batch)
        _sync(self.device)
        self.forward_s += time.perf_counter() - t0
        return out

    def candidates(self, outputs, batch):
        t0 = time.perf_counter()
        out = self.inner.candidates(outputs, batch)
        _sync(self.device)
        self.candidates_s += time.perf_counter() - t0
        return out


def run_epoch_bench(cfg: ExperimentConfig, device: torch.device, steps: int | None = None,
                    batch_size: int | None = None, video_dim: int | None = None,
                    train_queries: int | None = None, test_queries: int | None = None) -> dict:
    """One epoch at a preset's sizes on random inputs, timed by part.

    Training: ``train_queries`` samples (default: the benchmark's training split) batched by
    the DataLoader and ``collate`` as in training, each step the trainer's (forward, loss,
    backward, gradient clipping, the preset's optimizer). Evaluation: a test split of the
    benchmark's real size (``test_queries``) through the one evaluation path
    (:func:`~momentloc.engine.evaluator.predict_lines`: model, candidate decoding, NMS,
    prediction lines under ``eval.protocol``; then :func:`score_lines`, the metrics).

    ``steps``: time only that many training steps and ``steps`` evaluation batches, and
    extrapolate every part linearly to the full split sizes (``extrapolated`` in the result).

    Returns seconds and share of the epoch per part: ``train_data`` (batching),
    ``train_steps``, ``eval_forward`` (the model), ``eval_decode`` (candidates, NMS, lines and
    evaluation batching) and ``eval_metrics``.
    """
    from momentloc.data.card import DatasetCard, load_card
    from momentloc.engine.distributed import DistInfo
    from momentloc.engine.evaluator import predict_lines, score_lines
    from momentloc.engine.optim import build_optimizer
    from momentloc.engine.runtime import autocast, progress
    from momentloc.engine.trainer import weighted_loss
    from momentloc.errors import ConfigError

    sizes = SPLIT_SIZES.get(cfg.data.dataset)
    n_train = train_queries or (sizes[0] if sizes else None)
    n_test = test_queries or (sizes[1] if sizes else None)
    if n_train is None or n_test is None:
        raise ConfigError(f"bench --epoch: no split sizes known for dataset {cfg.data.dataset!r} "
                          f"(known: {', '.join(sorted(SPLIT_SIZES))}); give --train-queries and "
                          f"--test-queries")
    if steps is not None and steps < 1:
        raise ConfigError(f"bench --epoch --steps must be at least 1, got {steps}")
    try:
        card = load_card(cfg.data.dataset, data_root=".")
    except ConfigError:  # not a bundled benchmark: its metrics from the config alone
        card = DatasetCard(name=cfg.data.dataset, format="records", splits={}, roles={})
    ctx = bench_context(cfg, video_dim)
    bsz = batch_size or cfg.train.batch_size
    eval_bsz = cfg.train.eval_batch_size
    pad_video = cfg.data.resample == "pad"
    model = create_model(cfg.model_name, cfg.model, ctx).to(device)
    opt = build_optimizer(model.parameters(), cfg.optim)
    tc = cfg.train

    total_steps = math.ceil(n_train / bsz)
    run_steps = min(steps, total_steps) if steps else total_steps
    warm = 1 if run_steps < total_steps else 0     # extrapolating: one untimed warm-up step
    train_set = RandomGroundingSet(ctx, min(n_train, (warm + run_steps) * bsz), seed=tc.seed,
                                   pad_video=pad_video)
    loader = DataLoader(train_set, batch_size=bsz, shuffle=True, collate_fn=collate,
                        num_workers=cfg.data.num_workers, drop_last=False)
    data_s = step_s = 0.0
    model.train()
    it = iter(loader)
    bar = progress(total=warm + run_steps, desc=f"bench epoch {cfg.model_name} (train)",
                   unit="step")
    for i in range(warm + run_steps):
        t0 = time.perf_counter()
        batch = next(it).to(device)
        t1 = time.perf_counter()
        with autocast(device, tc.amp):
            out = model(batch)
            terms = model.loss(out, batch)
            loss = weighted_loss({k: v.float() for k, v in terms.items()}, cfg.model.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        _sync(device)
        if i >= warm:
            data_s += t1 - t0
            step_s += time.perf_counter() - t1
        bar.update()
    bar.close()
    train_scale = total_steps / run_steps

    n_eval = min(n_test, steps * eval_bsz) if steps else n_test
    test_set = RandomGroundingSet(ctx, n_eval, seed=tc.seed + 1, pad_video=pad_video)
    timed = _TimedModel(model, device)
    t0 = time.perf_counter()
    lines = predict_lines(timed, test_set, cfg.eval, eval_bsz, device, DistInfo(), amp=tc.amp,
                          num_workers=cfg.data.num_workers)
    predict_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = score_lines(lines, cfg, card)
    metrics_s = time.perf_counter() - t0
    eval_scale = n_test / n_eval

    parts = {"train_data": data_s * train_scale, "train_steps": step_s * train_scale,
             "eval_forward": timed.forward_s * eval_scale,
             "eval_decode": (predict_s - timed.forward_s) * eval_scale,
             "eval_metrics": metrics_s * eval_scale}
    epoch_s = sum(parts.values())
    return {
        "model": cfg.model_name, "device": str(device), "dataset": cfg.data.dataset,
        "protocol": cfg.eval.protocol, "batch_size": bsz, "eval_batch_size": eval_bsz,
        "num_clips": ctx.num_clips, "video_dim": ctx.video_dim, "train_queries": n_train,
        "test_queries": n_test, "timed_train_steps": run_steps, "train_steps": total_steps,
        "timed_test_queries": n_eval, "extrapolated": run_steps < total_steps or n_eval < n_test,
        "epoch_s": epoch_s, "parts_s": parts,
        "shares": {k: v / epoch_s for k, v in parts.items()} if epoch_s > 0 else {},
        "metric_names": sorted(metrics), "threads": torch.get_num_threads(),
    }
