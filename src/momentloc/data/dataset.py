"""One dataset class for every benchmark and model: records + feature store -> Batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from momentloc.config.schema import DataConfig
from momentloc.data.batch import Batch
from momentloc.data.features import FeatureCache, FeatureStore
from momentloc.data.pca import PCA
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord
from momentloc.data.resample import l2_normalize, resample
from momentloc.data.text import PAD, QueryEncoder, Vocabulary
from momentloc.errors import DataError

log = logging.getLogger("momentloc.data")


def encode_features(feats: np.ndarray, cfg: DataConfig, pca: PCA | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(M, D)`` clip features -> model input ``(N, Dv)`` float32 and mask ``(N,)`` bool.

    Resample to ``cfg.num_clips`` (``cfg.resample``), project with ``pca`` when given, then
    L2-normalize each clip when ``cfg.l2_normalize``. PCA runs after resampling because it is
    affine, so it commutes with mean-pooling and repeating, and N is usually smaller than M.
    Padded steps stay zero.
    """
    feats, mask = resample(feats, cfg.num_clips, cfg.resample)
    if pca is not None:
        feats = pca.transform(feats) * mask[:, None]
    if cfg.l2_normalize:
        feats = l2_normalize(feats)
    return feats.astype(np.float32, copy=False), mask


@dataclass
class Sample:
    """One (video, query, moment) sample as numpy arrays; :func:`collate` batches them.

    Attributes:
        video_feats: ``(N, Dv)`` float32. video_mask: ``(N,)`` bool.
        query_ids: ``(L,)`` int64, 1 <= L <= max_query_len. query_feats: ``(L, Dw)`` float32.
        span: ``(start, end)`` seconds. duration: seconds.
        meta: ``query_id``, ``video_id``, ``query``, ``annotator_spans`` and, from a feature
            store, ``num_features`` (M, the video's feature rows before resampling) and
            ``span_rows`` (the moment on those rows, ``[start, end] * (M / duration)`` in
            float64).
    """

    video_feats: np.ndarray
    video_mask: np.ndarray
    query_ids: np.ndarray
    query_feats: np.ndarray
    span: tuple[float, float]
    duration: float
    meta: dict = field(default_factory=dict)


class GroundingDataset(Dataset):
    """Records plus a feature store, for every benchmark and model.

    Construction checks up front, without reading any array, that every record's video is in
    the store, and encodes every query. A missing video, a video listed in ``bad_videos`` or
    an empty query raises DataError (``cfg.on_bad_input == "error"``) or drops the record with
    a count (``"skip"``); a split that loses every record raises in either mode. Feature
    arrays are validated again when read.

    Args:
        records: the split's moment records.
        store: features (shared between datasets; re-opens itself in each worker).
        vocab: vocabulary (ids 0 = pad, 1 = unk).
        word_vectors: ``(len(vocab), Dw)`` float32 rows of the vocabulary.
        cfg: the data config (num_clips, resample, l2_normalize, max_query_len, oov,
            on_bad_input, cache_features).
        pca: projection applied to the features, or None. May be set after construction
            (:func:`~momentloc.data.build.build_data` fits it on the training dataset's videos).
        bad_videos: video id -> the DataError its features raised
            (:meth:`~momentloc.data.features.FeatureStore.check_videos`); their records are
            bad input.
    """

    def __init__(self, records: Sequence[MomentRecord], store: FeatureStore, vocab: Vocabulary,
                 word_vectors: np.ndarray, cfg: DataConfig, pca: PCA | None = None,
                 bad_videos: Mapping[str, DataError] | None = None):
        self.store = store
        self.cfg = cfg
        self.encoder = QueryEncoder(vocab, np.asarray(word_vectors, dtype=np.float32),
                                    cfg.max_query_len, cfg.oov, cfg.tokenizer)
        self._pca = pca
        self.cache = FeatureCache() if cfg.cache_features else None
        policy = InputPolicy(cfg.on_bad_input)
        video_ids = list(dict.fromkeys(r.video_id for r in records))
        missing = store.missing(video_ids)
        missing_set = set(missing)
        self.records: list[MomentRecord] = []
        self._query_ids: list[np.ndarray] = []
        for r in records:
            if r.video_id in missing_set:
                policy.bad(DataError(
                    f"no features in the store ({len(missing)} of {len(video_ids)} videos "
                    f"missing, e.g. {', '.join(map(repr, missing[:3]))})",
                    path=str(store.path), video_id=r.video_id))
                continue
            if bad_videos and r.video_id in bad_videos:
                policy.bad(bad_videos[r.video_id])
                continue
            try:
                ids, _ = self.encoder.encode(r.query, r.query_id)
            except DataError as e:
                policy.bad(e)
                continue
            self.records.append(r)
            self._query_ids.append(ids)
        self.skipped = policy.skipped
        policy.log_summary(f"dataset ({store.path})")
        if records and not self.records:
            raise DataError(f"every one of the {len(records)} queries was skipped as bad input; "
                            f"first: {policy.reasons[0]}", path=str(store.path))

    def __getstate__(self):
        # a spawned worker starts with an empty cache rather than a pickled copy of it
        state = dict(self.__dict__)
        if self.cache is not None:
            state["cache"] = FeatureCache(self.cache.max_bytes)
        return state

    @property
    def pca(self) -> PCA | None:
        return self._pca

    @pca.setter
    def pca(self, value: PCA | None) -> None:
        self._pca = value
        if self.cache is not None:
            self.cache.clear()  # cached features were projected with the old value

    @property
    def video_ids(self) -> list[str]:
        """Distinct videos of the kept records, in first-seen order."""
        return list(dict.fromkeys(r.video_id for r in self.records))

    @property
    def video_dim(self) -> int:
        return self._pca.dim if self._pca is not None else self.store.dim

    def video(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(feats (N, Dv), mask (N,))`` of one video (cached when enabled)."""
        return self._video(video_id)[:2]

    def _video(self, video_id: str) -> tuple[np.ndarray, np.ndarray, int]:
        """:meth:`video` and the number of raw feature rows it was resampled from."""
        hit = self.cache.get(video_id) if self.cache is not None else None
        if hit is not None:
            return hit[0], hit[1], int(hit[2])
        raw = self.store.get(video_id)
        feats, mask = encode_features(raw, self.cfg, self._pca)
        if self.cache is not None:
            self.cache.put(video_id, (feats, mask, np.asarray(len(raw), dtype=np.int64)))
        return feats, mask, len(raw)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Sample:
        r = self.records[i]
        feats, mask, num_features = self._video(r.video_id)
        ids = self._query_ids[i]
        return Sample(
            video_feats=feats, video_mask=mask, query_ids=ids,
            query_feats=self.encoder.word_vectors[ids], span=r.span, duration=r.duration,
            meta={"query_id": r.query_id, "video_id": r.video_id, "query": r.query,
                  "annotator_spans": [list(s) for s in r.annotator_spans],
                  "num_features": num_features,
                  "span_rows": [t * (num_features / r.duration) for t in r.span]})


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a :class:`Batch`; queries are padded to the longest in the batch.

    Videos all have ``num_clips`` steps (their masks come from resampling). Padded words get
    id 0, a zero vector and a False mask.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    lengths = [len(s.query_ids) for s in samples]
    num, max_len, word_dim = len(samples), max(lengths), samples[0].query_feats.shape[1]
    query_ids = np.full((num, max_len), PAD, dtype=np.int64)
    query_feats = np.zeros((num, max_len, word_dim), dtype=np.float32)
    for b, s in enumerate(samples):  # per sample, not per word or clip
        query_ids[b, :lengths[b]] = s.query_ids
        query_feats[b, :lengths[b]] = s.query_feats
    query_mask = np.arange(max_len)[None, :] < np.asarray(lengths)[:, None]
    return Batch(
        video_feats=torch.from_numpy(np.stack([s.video_feats for s in samples])),
        video_mask=torch.from_numpy(np.stack([s.video_mask for s in samples])),
        query_feats=torch.from_numpy(query_feats),
        query_ids=torch.from_numpy(query_ids),
        query_mask=torch.from_numpy(query_mask),
        spans=torch.tensor([s.span for s in samples], dtype=torch.float32),
        durations=torch.tensor([s.duration for s in samples], dtype=torch.float32),
        meta=[s.meta for s in samples])
