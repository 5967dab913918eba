"""From a data config and a dataset card to ready datasets, vocabulary, word vectors and PCA.

A run's ``artifacts_dir`` receives ``vocab.json``, ``word_vectors.npy`` and (with PCA)
``pca.npz``: with them a trained model encodes new queries and features without the GloVe
file. When they already exist they are reused rather than rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from momentloc.config.schema import DataConfig
from momentloc.data.batch import Batch
from momentloc.data.card import DatasetCard
from momentloc.data.converters import load_split
from momentloc.data.dataset import GroundingDataset, Sample, collate, encode_features
from momentloc.data.features import FeatureStore, open_store
from momentloc.data.pca import PCA, fit_pca
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.data.text import QueryEncoder, Vocabulary, build_embeddings, load_glove, tokenize
from momentloc.errors import ConfigError, DataError
from momentloc.models.base import ModelContext

log = logging.getLogger("momentloc.data")

VOCAB_FILE, VECTORS_FILE, PCA_FILE = "vocab.json", "word_vectors.npy", "pca.npz"
FEATURE_CHECK_FILE = "feature_check.json"
# GloVe files smaller than this are parsed directly: a cache would cost more than it saves
_CACHE_MIN_BYTES = 64 << 20
_HOLDOUT_SEED = 0  # fixed, so the held-out videos do not change with the training seed

__all__ = ["DataBundle", "build_data", "load_artifacts", "save_artifacts", "resolve_splits",
           "default_cache_dir", "encode_features", "QueryEncoder"]


@dataclass
class DataBundle:
    """Everything data-side a run needs.

    Attributes:
        train / val / test: datasets per role (None when the role has no split).
        vocab, word_vectors: vocabulary and its ``(V, Dw)`` float32 vectors.
        pca: the feature projection, or None.
        splits: split name per role (``"<train split>-holdout"`` for videos held out of
            training by ``val_holdout``).
    """

    cfg: DataConfig
    card: DatasetCard
    store: FeatureStore
    vocab: Vocabulary
    word_vectors: np.ndarray
    pca: PCA | None
    train: GroundingDataset | None
    val: GroundingDataset | None
    test: GroundingDataset | None
    splits: dict[str, str | None] = field(default_factory=dict)

    @property
    def video_dim(self) -> int:
        return self.pca.dim if self.pca is not None else self.store.dim

    def context(self) -> ModelContext:
        """What a model needs to be built from these data."""
        return ModelContext(video_dim=self.video_dim, word_dim=int(self.word_vectors.shape[1]),
                            num_clips=self.cfg.num_clips, max_query_len=self.cfg.max_query_len,
                            vocab_size=len(self.vocab),
                            # a copy: a model fine-tuning its embedding must not change the
                            # dataset's frozen query_feats
                            word_vectors=torch.tensor(self.word_vectors))

    def dataset(self, role: str) -> GroundingDataset | None:
        if role not in ("train", "val", "test"):
            raise ValueError(f"unknown role {role!r} (train, val, test)")
        return getattr(self, role)

    def records(self, role: str) -> list[MomentRecord]:
        """Records kept for ``role`` (empty when the role has no split)."""
        ds = self.dataset(role)
        return list(ds.records) if ds is not None else []

    def split_name(self, role: str) -> str:
        """Name of the split playing ``role`` (ConfigError when none does)."""
        name = self.splits.get(role)
        if name is None:
            raise ConfigError(f"dataset {self.card.name!r} has no {role} split")
        return name

    def dataset_for(self, split: str | None = None) -> tuple[str, GroundingDataset]:
        """``(role, dataset)`` for a split name (default: the test role).

        A split that plays no role is read from the card and encoded with this bundle's
        vocabulary and PCA; its ``role`` is then the split name itself.
        """
        if split is None:
            for role in ("test", "val"):
                if self.dataset(role) is not None:
                    return role, self.dataset(role)
            raise ConfigError(f"dataset {self.card.name!r} has no test or validation split")
        for role, name in self.splits.items():
            if name == split and self.dataset(role) is not None:
                return role, self.dataset(role)
        if split not in self.card.splits:
            raise ConfigError(f"dataset {self.card.name!r} has no split {split!r} "
                              f"(splits: {', '.join(self.card.splits)})")
        records = load_split(self.card, split, InputPolicy(self.cfg.on_bad_input))
        bad = check_split_features(self.store, {split: records}, None, self.cfg.on_bad_input)
        return split, GroundingDataset(records, self.store, self.vocab, self.word_vectors,
                                       self.cfg, self.pca, bad)

    def query_encoder(self) -> QueryEncoder:
        return QueryEncoder(self.vocab, self.word_vectors, self.cfg.max_query_len, self.cfg.oov,
                            self.cfg.tokenizer)

    def video_features(self, video_id: str) -> tuple[np.ndarray, float | None]:
        """Raw ``(M, D)`` features of a store video and its duration from the records (None
        when no record of any role names the video)."""
        feats = self.store.get(video_id)
        for role in ("test", "val", "train"):
            for r in self.records(role):
                if r.video_id == video_id:
                    return feats, r.duration
        return feats, None

    def make_batch(self, features: np.ndarray, duration: float, queries: list[str]) -> Batch:
        """A batch of ``queries`` against one video's raw ``(M, D)`` features, encoded as in
        training (resampling, PCA, normalization, vocabulary). Spans are placeholders (0, 0)."""
        from momentloc.data.features import check_features

        feats, mask = encode_features(check_features(features, self.store.dim, "input features"),
                                      self.cfg, self.pca)
        enc = self.query_encoder()
        samples = []
        for i, text in enumerate(queries):
            ids, vecs = enc.encode(text, query_id=f"query {i}")
            samples.append(Sample(feats, mask, ids, vecs, (0.0, 0.0), float(duration),
                                  {"query_id": f"query {i}", "video_id": "<input>", "query": text,
                                   "annotator_spans": []}))
        return collate(samples)


def default_cache_dir() -> Path:
    """``$MOMENTLOC_CACHE_DIR``, else ``$XDG_CACHE_HOME/momentloc``, else ``~/.cache/momentloc``."""
    if os.environ.get("MOMENTLOC_CACHE_DIR"):
        return Path(os.environ["MOMENTLOC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "momentloc"


def resolve_splits(cfg: DataConfig, card: DatasetCard) -> dict[str, str | None]:
    """Split name per role: ``cfg.*_split`` override the card's roles; ``val_split: none``
    disables validation."""
    out = {}
    for role in ("train", "val", "test"):
        override = getattr(cfg, f"{role}_split")
        name = card.split_for(role) if override is None else override
        if role == "val" and isinstance(name, str) and name.lower() == "none":
            name = None
        if name is not None and name not in card.splits:
            raise ConfigError(f"data.{role}_split: split {name!r} is not in dataset "
                              f"{card.name!r} (splits: {', '.join(card.splits)})")
        out[role] = name
    if out["train"] is None:
        raise ConfigError(f"dataset {card.name!r} has no training split (set data.train_split)")
    return out


def _holdout(records: list[MomentRecord], fraction: float) -> tuple[list, list]:
    """Split records by video: a seeded ``fraction`` of the training videos is held out."""
    videos = sorted({r.video_id for r in records})
    if not 0 < fraction < 1 or len(videos) < 2:
        raise ConfigError(f"data.val_holdout={fraction} needs 0 < fraction < 1 and at least 2 "
                          f"training videos (got {len(videos)})")
    count = min(len(videos) - 1, max(1, math.ceil(fraction * len(videos))))
    held = set(np.random.default_rng(_HOLDOUT_SEED).permutation(videos)[:count].tolist())
    return ([r for r in records if r.video_id not in held],
            [r for r in records if r.video_id in held])


def check_split_features(store: FeatureStore, records: dict[str, list[MomentRecord] | None],
                         artifacts: Path | None, mode: str) -> dict[str, DataError]:
    """Read and validate every stored video of ``records`` (test role first) before any work.

    NaN, inf, out-of-bound values, a wrong dimension or an unreadable array are found here,
    not at the end of training. With ``mode == "error"`` the first bad video raises its
    DataError; with ``"skip"`` every bad one is returned (the datasets drop its queries).
    A clean result is remembered in ``artifacts/feature_check.json`` against the store's
    fingerprint and the videos checked, so a later build of the same run (resume, evaluate,
    predict) does not read the store again.
    """
    order = [role for role in ("test", "val", "train") if role in records]
    order += [role for role in records if role not in order]
    ids = list(dict.fromkeys(r.video_id for role in order for r in (records[role] or [])))
    key = {"store": store.fingerprint(),
           "videos": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()}
    memo = artifacts / FEATURE_CHECK_FILE if artifacts is not None else None
    if memo is not None and memo.is_file():
        try:
            saved = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key and not saved.get("bad"):
            return {}
    start = time.perf_counter()
    bad = store.check_videos(ids, stop_at_first=mode == "error")
    log.info("checked the features of %d videos in %.1f s: %d bad", len(ids),
             time.perf_counter() - start, len(bad))
    if bad and mode == "error":
        raise next(iter(bad.values()))
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo, json.dumps({"key": key, "bad": {v: str(e) for v, e in bad.items()}},
                                           indent=1) + "\n")
    return bad


def save_artifacts(directory: str | os.PathLike, vocab: Vocabulary, word_vectors: np.ndarray,
                   pca: PCA | None) -> None:
    """Write ``vocab.json``, ``word_vectors.npy`` and ``pca.npz`` (each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if pca is not None:
        pca.save(directory / PCA_FILE)
    tmp = directory / f".{VECTORS_FILE}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(word_vectors, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, directory / VECTORS_FILE)
    vocab.save(directory / VOCAB_FILE)  # last: its presence marks a complete set


def load_artifacts(directory: str | os.PathLike) -> tuple[Vocabulary, np.ndarray, PCA | None]:
    """``(vocab, word_vectors (V, Dw), pca or None)`` saved by a run.

    Raises:
        DataError: a file is missing or malformed, or the vectors do not match the vocabulary.
    """
    directory = Path(directory)
    vocab = Vocabulary.load(directory / VOCAB_FILE)
    vpath = directory / VECTORS_FILE
    try:
        vectors = np.load(vpath, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read word vectors ({e})", path=str(vpath)) from e
    if vectors.ndim != 2 or vectors.shape[0] != len(vocab):
        raise DataError(f"word vectors of shape {vectors.shape} do not match the vocabulary of "
                        f"{len(vocab)} words", path=str(vpath))
    ppath = directory / PCA_FILE
    pca = PCA.load(ppath) if ppath.is_file() else None
    return vocab, vectors.astype(np.float32, copy=False), pca


def _text_side(cfg: DataConfig, card: DatasetCard, queries: list[MomentRecord]
               ) -> tuple[Vocabulary, np.ndarray]:
    if card.word_vectors is None:
        raise ConfigError(f"dataset card {card.name!r} names no word_vectors (a GloVe text file, "
                          f"e.g. glove.840B.300d.txt); add 'word_vectors: <path>' to the card")
    path = card.path(card.word_vectors)
    if not path.is_file():
        raise DataError("word-vector file not found (the card's word_vectors)", path=str(path))
    full = Vocabulary.build(tokenize(r.query, cfg.tokenizer) for r in queries)
    cache = default_cache_dir() if path.stat().st_size >= _CACHE_MIN_BYTES else None
    table = load_glove(path, full.words[2:], cache_dir=cache)
    vocab, vectors = build_embeddings(full, table, cfg.oov)
    if len(vocab) <= 2:
        raise DataError(f"no query word has a vector in {path.name}", path=str(path))
    return vocab, vectors


def build_data(cfg: DataConfig, card: DatasetCard, artifacts_dir: str | os.PathLike | None = None
               ) -> DataBundle:
    """Read the splits, build or reuse vocabulary / word vectors / PCA, and make the datasets.

    Args:
        cfg: the data config.
        card: the dataset card (its features and word_vectors are required).
        artifacts_dir: where vocab.json, word_vectors.npy and pca.npz are saved, or reused
            from when already there (None: build, save nothing).

    Raises:
        ConfigError: unknown split, no training split, no word_vectors in the card, bad
            val_holdout or pca_dim, or saved artifacts that do not match ``cfg``.
        DataError: bad annotations or features (per ``cfg.on_bad_input``). Every split's
            features are read and checked here (:func:`check_split_features`), before any
            training.
    """
    splits = resolve_splits(cfg, card)
    records = {role: (load_split(card, name, InputPolicy(cfg.on_bad_input)) if name else None)
               for role, name in splits.items()}
    if splits["val"] is None and cfg.val_holdout > 0:
        records["train"], records["val"] = _holdout(records["train"], cfg.val_holdout)
        splits["val"] = f"{splits['train']}-holdout"
        log.info("validation: %d queries on %d held-out training videos", len(records["val"]),
                 len({r.video_id for r in records["val"]}))
    elif cfg.val_holdout > 0:
        log.info("data.val_holdout ignored: split %r validates", splits["val"])

    store = open_store(card)
    if cfg.pca_dim < 0 or cfg.pca_dim > store.dim:
        raise ConfigError(f"data.pca_dim={cfg.pca_dim}: must be 0 (off) or at most the feature "
                          f"dimension {store.dim}")
    artifacts = Path(artifacts_dir) if artifacts_dir is not None else None
    bad = check_split_features(store, records, artifacts, cfg.on_bad_input)
    reuse = artifacts is not None and (artifacts / VOCAB_FILE).is_file()
    if reuse:
        vocab, vectors, pca = load_artifacts(artifacts)
        _check_reused(cfg, store, vectors, pca, artifacts)
        log.info("reusing vocabulary, word vectors%s from %s", " and PCA" if pca else "", artifacts)
    else:
        queries = (records["train"] if cfg.vocab_from == "train" else
                   [r for role in ("train", "val", "test") for r in (records[role] or [])])
        vocab, vectors = _text_side(cfg, card, queries)
        pca = None

    datasets = {role: GroundingDataset(recs, store, vocab, vectors, cfg, pca, bad)
                if recs is not None else None for role, recs in records.items()}
    if not reuse and cfg.pca_dim > 0:
        pca = fit_pca(datasets["train"].video_ids, store.get, cfg.pca_dim)
        for ds in datasets.values():
            if ds is not None:
                ds.pca = pca
    if not reuse and artifacts is not None:
        save_artifacts(artifacts, vocab, vectors, pca)
    return DataBundle(cfg=cfg, card=card, store=store, vocab=vocab, word_vectors=vectors, pca=pca,
                      splits=splits, **datasets)


def _check_reused(cfg: DataConfig, store: FeatureStore, vectors: np.ndarray, pca: PCA | None,
                  where: Path) -> None:
    # build_embeddings makes the unknown word's row non-zero exactly for oov "unk"
    if (cfg.oov == "unk") != bool(np.any(vectors[1])):
        raise ConfigError(f"{where}: saved word vectors were built for another data.oov policy "
                          f"than {cfg.oov!r}; use a new run directory")
    want = cfg.pca_dim if cfg.pca_dim > 0 else None
    have = pca.dim if pca is not None else None
    if want != have or (pca is not None and pca.in_dim != store.dim):
        raise ConfigError(f"{where}: saved artifacts have PCA {have or 'off'}"
                          f"{f' from {pca.in_dim}-d' if pca else ''}, the config asks for "
                          f"{want or 'off'} on {store.dim}-d features; use a new run directory")
