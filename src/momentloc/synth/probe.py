"""A non-deep matcher that checks a dataset is learnable: bag-of-words ridge detectors.

Words are first grouped by their word vectors (cosine > ``group_cosine``, joined
transitively), so that synonyms and inflections share a detector as they share a region of
GloVe space; without vectors every word is its own group. For every group ``w`` of the
training words a ridge regression ``beta_w`` maps a clip feature (pooled to
``num_clips`` clips, standardized, PCA-reduced, with its neighbours' mean appended) to how
much of the clip lies inside the moment of a training query containing ``w``. A test query
scores each clip by the mean of its known words' detectors, and its prediction is the window
maximizing ``sum(score - tau)`` (``tau`` tuned on training queries). It knows nothing of word
order, so it cannot resolve ordinal or context queries beyond chance: deep models should beat
it, and it should beat the moment prior.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from momentloc.data.records import MomentRecord
from momentloc.data.text import tokenize
from momentloc.spans import indices_to_seconds, temporal_iou


def pool_clips(feats: np.ndarray, num_clips: int) -> np.ndarray:
    """Mean-pool (or repeat) ``(M, D)`` features to ``(num_clips, D)`` equal-time clips."""
    m = len(feats)
    edges = np.linspace(0, m, num_clips + 1)
    lo = np.minimum(np.floor(edges[:-1]).astype(int), m - 1)
    hi = np.maximum(np.ceil(edges[1:]).astype(int), lo + 1)
    csum = np.concatenate([np.zeros((1, feats.shape[1])), np.cumsum(feats, axis=0, dtype=np.float64)])
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def coverage(spans: np.ndarray, durations: np.ndarray, num_clips: int) -> np.ndarray:
    """``(Q, num_clips)``: the fraction of each clip inside each span (seconds)."""
    edges = np.arange(num_clips + 1)[None, :] * (durations[:, None] / num_clips)   # (Q, N+1)
    inter = np.clip(np.minimum(edges[:, 1:], spans[:, 1:2]) - np.maximum(edges[:, :-1], spans[:, :1]),
                    0.0, None)
    return inter / (edges[:, 1:] - edges[:, :-1])


@dataclass
class BagOfWordsProbe:
    """Per-word ridge detectors over pooled clip features (see the module docstring).

    Args:
        num_clips: clips per video after pooling. pca_dim: feature dimensions kept.
        context: neighbours on each side averaged into the appended context feature.
        ridge: L2 penalty of each word's regression.
        word_vectors: ``word -> vector``; words closer than ``group_cosine`` share a detector.
    """

    num_clips: int = 32
    pca_dim: int = 64
    context: int = 2
    ridge: float = 30.0
    word_vectors: dict[str, np.ndarray] | None = None
    group_cosine: float = 0.5

    def _group_words(self, words: list[str]) -> dict[str, int]:
        """Word -> group id (connected components of the cosine > threshold graph)."""
        group = list(range(len(words)))
        vecs = self.word_vectors or {}
        have = [i for i, w in enumerate(words) if w in vecs]
        if have:
            v = torch.from_numpy(np.stack([vecs[words[i]] for i in have]).astype(np.float64))
            v = v / (v.norm(dim=1, keepdim=True) + 1e-12)
            close = ((v @ v.T) > self.group_cosine).numpy()                         # (H, H)
            # label propagation to the smallest index: components in at most H rounds
            label = np.arange(len(have))
            for _ in range(len(have)):
                new = np.where(close, label[None, :], len(have)).min(axis=1)
                if np.array_equal(new, label):
                    break
                label = new
            for k, i in enumerate(have):
                group[i] = have[label[k]]
        return {w: g for w, g in zip(words, group)}

    def _embed(self, pooled: np.ndarray) -> torch.Tensor:
        """``(V, N, D)`` pooled features -> ``(V, N, 2P + 1)`` (PCA, context mean, bias)."""
        x = ((torch.from_numpy(pooled) - self.mean) / self.std) @ self.components  # (V, N, P)
        k = self.context
        padded = torch.cat([x[:, :1].expand(-1, k, -1), x, x[:, -1:].expand(-1, k, -1)], dim=1)
        csum = torch.cat([torch.zeros_like(padded[:, :1]), padded.cumsum(dim=1)], dim=1)
        ctx = (csum[:, 2 * k + 1:] - csum[:, :-2 * k - 1]) / (2 * k + 1)
        return torch.cat([x, ctx, torch.ones_like(x[..., :1])], dim=-1)

    def fit(self, records: Sequence[MomentRecord], features: Callable[[str], np.ndarray]
            ) -> BagOfWordsProbe:
        """Fit on training records; ``features(video_id)`` returns ``(M, D)`` clip features.

        The linear algebra runs in torch (float64, CPU), so ``torch.set_num_threads`` bounds it.
        """
        vids = list(dict.fromkeys(r.video_id for r in records))
        pooled = np.stack([pool_clips(features(v), self.num_clips) for v in vids])  # (V, N, D)
        flat = torch.from_numpy(pooled.reshape(-1, pooled.shape[-1]))
        self.mean, self.std = flat.mean(0), flat.std(0, correction=0) + 1e-6
        z = (flat - self.mean) / self.std
        _, vecs = torch.linalg.eigh(z.T @ z)                                          # ascending
        self.components = vecs.flip(1)[:, : self.pca_dim]                            # (D, P)
        x = self._embed(pooled)                                                      # (V, N, F)
        row = {v: i for i, v in enumerate(vids)}
        qv = torch.tensor([row[r.video_id] for r in records])
        spans = np.array([r.span for r in records])
        durations = np.array([r.duration for r in records])
        y = torch.from_numpy(coverage(spans, durations, self.num_clips))            # (Q, N)
        tokens = [set(tokenize(r.query)) for r in records]
        words = sorted(set().union(*tokens))
        groups = self._group_words(words)
        ids = {g: i for i, g in enumerate(sorted(set(groups.values())))}
        self.index = {w: ids[groups[w]] for w in words}
        has = torch.zeros(len(records), len(ids), dtype=torch.float64)               # (Q, W)
        for q, toks in enumerate(tokens):
            has[q, [self.index[t] for t in toks]] = 1.0
        num_v, num_f = x.shape[0], x.shape[-1]
        per_video = torch.zeros(num_v, len(ids), dtype=torch.float64).index_add_(0, qv, has)
        gram = torch.einsum("vnf,vng->vfg", x, x)                                    # (V, F, F)
        a = (per_video.T @ gram.reshape(num_v, -1)).reshape(-1, num_f, num_f)
        a = a + self.ridge * torch.eye(num_f, dtype=torch.float64)                   # (W, F, F)
        # sum over queries q holding word w of x_v(q)^T y_q, gathered per video
        targets = torch.zeros(num_v, self.num_clips, len(ids), dtype=torch.float64)
        targets.index_add_(0, qv, y[:, :, None] * has[:, None, :])                   # (V, N, W)
        b = torch.einsum("vnf,vnw->wf", x, targets)                                  # (W, F)
        self.beta = torch.linalg.solve(a, b[..., None])[..., 0]                      # (W, F)
        # idf weights, so that concept words outweigh "the" and "person"
        self.idf = torch.log(len(records) / has.sum(0).clamp_min(1.0))               # (W,)
        scores = self.clip_scores(records, features)
        hits = [(temporal_iou(self._windows(scores, tau, durations), spans) >= 0.5).mean()
                for tau in _TAUS]  # the threshold maximizing training R@1 IoU=0.5
        self.tau = float(_TAUS[int(np.argmax(hits))])
        return self

    def clip_scores(self, records: Sequence[MomentRecord], features: Callable[[str], np.ndarray]
                    ) -> np.ndarray:
        """``(Q, num_clips)`` idf-weighted mean detector output of each query's known words."""
        vids = list(dict.fromkeys(r.video_id for r in records))
        x = self._embed(np.stack([pool_clips(features(v), self.num_clips) for v in vids]))
        row = {v: i for i, v in enumerate(vids)}
        has = torch.zeros(len(records), len(self.beta), dtype=torch.float64)
        for q, r in enumerate(records):
            known = sorted({self.index[t] for t in tokenize(r.query) if t in self.index})
            has[q, known] = self.idf[known] / self.idf[known].sum().clamp_min(1e-9)
        qv = torch.tensor([row[r.video_id] for r in records])
        w = has @ self.beta                                                          # (Q, F)
        chunks = [torch.einsum("qnf,qf->qn", x[qv[a:a + 1024]], w[a:a + 1024])
                  for a in range(0, len(qv), 1024)]  # bounds the (Q, N, F) gather
        return torch.cat(chunks).numpy()

    def predict(self, records: Sequence[MomentRecord], features: Callable[[str], np.ndarray]
                ) -> np.ndarray:
        """``(Q, 2)`` predicted spans in seconds: the window maximizing ``sum(score - tau)``."""
        durations = np.array([r.duration for r in records])
        return self._windows(self.clip_scores(records, features), self.tau, durations)

    def _windows(self, scores: np.ndarray, tau: float, durations: np.ndarray) -> np.ndarray:
        # standardized per query, so one threshold suits every query
        s = (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-9) - tau
        csum = np.concatenate([np.zeros((len(s), 1)), np.cumsum(s, axis=1)], axis=1)
        i, j = np.triu_indices(self.num_clips)
        best = np.argmax(csum[:, j + 1] - csum[:, i], axis=1)                        # (Q,)
        return indices_to_seconds(np.stack([i[best], j[best]], axis=1), durations, self.num_clips)


_TAUS = np.linspace(-0.25, 1.5, 15)
