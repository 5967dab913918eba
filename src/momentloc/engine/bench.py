"""Speed and memory at a preset's real sizes, on random inputs (``momentloc bench``)."""

from __future__ import annotations

import resource
import sys
import time

import torch

from momentloc.config.schema import ExperimentConfig
from momentloc.data.batch import Batch
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
    """Train steps/s and inference queries/s of ``cfg``'s model at the preset's sizes."""
    from momentloc.engine.runtime import autocast, progress
    from momentloc.engine.trainer import weighted_loss

    ctx = bench_context(cfg, video_dim)
    bsz = batch_size or cfg.train.batch_size
    model = create_model(cfg.model_name, cfg.model, ctx).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
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
