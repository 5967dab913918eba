import dataclasses
import logging
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from momentloc.config.schema import DataConfig
from momentloc.data.build import build_data, load_artifacts
from momentloc.data.card import DatasetCard, FeatureSpec, SplitFiles
from momentloc.data.dataset import GroundingDataset, collate
from momentloc.data.features import open_store, write_npy_dir
from momentloc.data.records import MomentRecord, write_records
from momentloc.data.text import UNK, Vocabulary
from momentloc.errors import ConfigError, DataError

DIM, WDIM = 6, 4
WORDS = ["person", "opens", "the", "door", "sits", "down", "on", "a", "chair", "walks", "away"]


def rec(qid, vid, query, span=(1.0, 3.0), split="train"):
    return MomentRecord(qid, vid, 10.0, query, span, (), split)


TRAIN = [rec("t0", "v0", "person opens the door"), rec("t1", "v1", "person sits down on a chair"),
         rec("t2", "v2", "person walks away"), rec("t3", "v3", "the person sits"),
         rec("t4", "v0", "person walks to the door")]
TEST = [rec("s0", "v4", "a person opens the door", split="test"),
        rec("s1", "v5", "person sits on a sofa", (0.0, 10.0), "test")]
VAL = [rec("d0", "v5", "person walks", split="val")]


@pytest.fixture
def toy(tmp_path):
    """A records-format card with npy features and a small GloVe file."""
    rng = np.random.default_rng(0)
    write_npy_dir(tmp_path / "feats", [
        (f"v{i}", rng.normal(size=(5 + 3 * i, DIM)).astype(np.float32)) for i in range(6)])
    for name, recs in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        write_records(tmp_path / f"{name}.jsonl", recs)
    (tmp_path / "glove.txt").write_text("".join(
        f"{w} {' '.join(str(round(float(x), 4)) for x in rng.normal(size=WDIM))}\n"
        for w in WORDS if w != "walks"))
    return DatasetCard(
        name="toy", format="records",
        splits={s: SplitFiles(f"{s}.jsonl") for s in ("train", "val", "test")},
        roles={"train": "train", "val": "val", "test": "test"},
        features=FeatureSpec(store="npy_dir", path="feats", dim=DIM),
        word_vectors="glove.txt", root=str(tmp_path))


def vocab_and_vectors():
    vocab = Vocabulary(WORDS)
    vectors = np.random.default_rng(1).normal(size=(len(vocab), WDIM)).astype(np.float32)
    vectors[:2] = 0
    return vocab, vectors


def make_ds(card, records, **cfg):
    vocab, vectors = vocab_and_vectors()
    return GroundingDataset(records, open_store(card), vocab, vectors, DataConfig(**{
        "num_clips": 8, "max_query_len": 5, **cfg}))


def test_sample_and_collate(toy):
    ds = make_ds(toy, TRAIN)
    s = ds[1]
    assert s.video_feats.shape == (8, DIM) and s.video_mask.all()
    words = ["person", "sits", "down", "on", "a"]
    assert s.query_ids.tolist() == [ds.encoder.vocab.id(w) for w in words]
    np.testing.assert_array_equal(s.query_feats, ds.encoder.word_vectors[s.query_ids])
    batch = collate([ds[0], ds[1], ds[2]])                  # 4, 5 (truncated) and 3 words
    assert batch.video_feats.shape == (3, 8, DIM) and batch.video_mask.dtype == torch.bool
    assert batch.query_ids.shape == (3, 5) and batch.query_feats.shape == (3, 5, WDIM)
    assert batch.query_mask.tolist() == [[1, 1, 1, 1, 0], [1] * 5, [1, 1, 1, 0, 0]]
    assert (batch.query_ids[~batch.query_mask] == 0).all()
    assert (batch.query_feats[~batch.query_mask] == 0).all()
    assert batch.spans.tolist() == [[1.0, 3.0]] * 3 and batch.durations.tolist() == [10.0] * 3
    assert batch.meta[2] == {"query_id": "t2", "video_id": "v2", "query": "person walks away",
                             "annotator_spans": [], "num_features": 11,  # rows before resampling
                             "span_rows": [1.0 * 1.1, 3.0 * 1.1]}        # and the moment on them
    assert len(batch) == 3


def test_pad_mode_masks_and_l2(toy):
    ds = make_ds(toy, TRAIN, num_clips=12, resample="pad", l2_normalize=True)
    batch = collate([ds[0], ds[2]])                        # v0 has 5 clips, v2 has 11
    assert batch.video_mask.sum(dim=1).tolist() == [5, 11]
    assert (batch.video_feats[~batch.video_mask] == 0).all()
    norms = batch.video_feats[batch.video_mask].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_dataloader_with_collate(toy):
    ds = make_ds(toy, TRAIN)
    loader = DataLoader(ds, batch_size=2, collate_fn=collate, shuffle=True)
    sizes = [len(b) for b in loader]
    assert sorted(sizes) == [1, 2, 2]


def test_features_are_cached(toy, monkeypatch):
    ds = make_ds(toy, TRAIN)
    calls = []
    real = ds.store.get
    monkeypatch.setattr(ds.store, "get", lambda v: calls.append(v) or real(v))
    first = ds[0].video_feats
    np.testing.assert_array_equal(ds[4].video_feats, first)      # same video v0
    assert calls == ["v0"]
    monkeypatch.undo()
    clone = pickle.loads(pickle.dumps(ds))       # what a spawned worker receives
    assert len(clone.cache) == 0 and len(clone) == len(ds)
    np.testing.assert_array_equal(clone[0].video_feats, first)
    nocache = make_ds(toy, TRAIN, cache_features=False)
    assert nocache.cache is None


def test_missing_video_error_and_skip(toy, caplog):
    records = TRAIN + [rec("x0", "gone", "person walks"), rec("x1", "gone", "person sits")]
    with pytest.raises(DataError, match="1 of 5 videos missing") as e:
        make_ds(toy, records)
    assert e.value.video_id == "gone"
    with caplog.at_level(logging.WARNING, logger="momentloc.data"):
        ds = make_ds(toy, records, on_bad_input="skip")
    assert len(ds) == len(TRAIN) and ds.skipped == 2 and "skipped 2" in caplog.text


def test_empty_query_error_and_skip(toy):
    records = TRAIN + [rec("empty7", "v1", " ... ")]
    with pytest.raises(DataError, match="'empty7' has no words"):
        make_ds(toy, records)
    assert len(make_ds(toy, records, on_bad_input="skip")) == len(TRAIN)


def test_bad_feature_array_raises_on_read(toy, tmp_path):
    write_npy_dir(tmp_path / "feats", [("v2", np.full((4, DIM), np.nan))])
    ds = make_ds(toy, TRAIN)
    with pytest.raises(DataError, match="first bad clip index 0") as e:
        ds[2]
    assert e.value.video_id == "v2"


# -- build_data ----------------------------------------------------------------------------
def cfg(**kw):
    return DataConfig(**{"num_clips": 8, "max_query_len": 6, **kw})


# -- features checked when the data are built, before any training --------------------------
BAD_FEATURES = {
    "nan": (lambda a: a.__setitem__((2, 1), np.nan), "NaN (first bad clip index 2"),
    "inf": (lambda a: a.__setitem__((0, 0), np.inf), "inf (first bad clip index 0"),
    "huge": (lambda a: a.__setitem__((1, 3), 3e38), "magnitude 3e+38"),
    "dim": (None, f"feature dimension {DIM + 2} != the card's dim {DIM}"),
}


def spoil(tmp_path, vid, kind):
    change, _ = BAD_FEATURES[kind]
    arr = np.ones((6, DIM + 2 if kind == "dim" else DIM), np.float32)
    if change:
        change(arr)
    write_npy_dir(tmp_path / "feats", [(vid, arr)])


@pytest.mark.parametrize("kind", list(BAD_FEATURES))
def test_bad_test_video_is_found_when_the_data_are_built(toy, tmp_path, kind):
    spoil(tmp_path, "v4", kind)  # a test-split video
    with pytest.raises(DataError) as e:
        build_data(cfg(), toy)
    assert BAD_FEATURES[kind][1] in str(e.value)
    assert e.value.video_id == "v4" and "v4.npy" in str(e.value)


@pytest.mark.parametrize("kind", list(BAD_FEATURES))
def test_skip_drops_the_queries_of_bad_videos(toy, tmp_path, kind, caplog):
    spoil(tmp_path, "v0", kind)  # two training queries
    with caplog.at_level(logging.WARNING, logger="momentloc.data"):
        bundle = build_data(cfg(on_bad_input="skip"), toy)
    assert [r.query_id for r in bundle.records("train")] == ["t1", "t2", "t3"]
    assert bundle.train.skipped == 2 and "skipped 2" in caplog.text
    assert caplog.text.count("video 'v0'") == 1  # one reason for the video's two queries
    assert len(bundle.records("test")) == 2 and bundle.test.skipped == 0
    bundle.train[0]  # the kept ones read


def test_a_split_with_every_video_bad_is_an_error_even_when_skipping(toy, tmp_path):
    for vid in ("v4", "v5"):
        spoil(tmp_path, vid, "nan")
    with pytest.raises(DataError, match="every one of the 2 queries was skipped"):
        build_data(cfg(on_bad_input="skip", val_split="none"), toy)


def test_feature_check_is_remembered_for_the_same_store(toy, tmp_path, monkeypatch):
    from momentloc.data.features import FeatureStore
    art = tmp_path / "run" / "artifacts"
    build_data(cfg(), toy, art)
    calls = []
    real = FeatureStore.check_videos
    monkeypatch.setattr(FeatureStore, "check_videos",
                        lambda self, ids, **kw: calls.append(list(ids)) or real(self, ids, **kw))
    build_data(cfg(), toy, art)
    assert calls == []  # same store, same videos: not read again
    spoil(tmp_path, "v4", "nan")  # the store changes: checked again, and the damage is found
    with pytest.raises(DataError, match="NaN"):
        build_data(cfg(), toy, art)
    assert len(calls) == 1


def test_evaluating_another_split_checks_its_features(toy, tmp_path):
    bundle = build_data(cfg(test_split="val"), toy)
    spoil(tmp_path, "v4", "inf")
    with pytest.raises(DataError, match="inf") as e:
        bundle.dataset_for("test")
    assert e.value.video_id == "v4"


def test_build_data_roles_context_and_artifacts(toy, tmp_path):
    art = tmp_path / "run" / "artifacts"
    bundle = build_data(cfg(), toy, art)
    assert [len(bundle.records(r)) for r in ("train", "val", "test")] == [5, 1, 2]
    assert bundle.splits == {"train": "train", "val": "val", "test": "test"}
    ctx = bundle.context()
    assert (ctx.video_dim, ctx.word_dim, ctx.num_clips, ctx.max_query_len) == (DIM, WDIM, 8, 6)
    # train words with a GloVe vector ("walks" has none, "to" no vector either)
    assert sorted(bundle.vocab.words[2:]) == sorted(
        {"person", "opens", "the", "door", "sits", "down", "on", "a", "chair", "away"})
    assert ctx.vocab_size == len(bundle.vocab)
    assert ctx.word_vectors.shape == (len(bundle.vocab), WDIM)
    ctx.word_vectors.add_(1.0)                      # a fine-tuned embedding leaves the data alone
    assert not bundle.word_vectors[0].any()
    assert {p.name for p in art.iterdir()} == {"vocab.json", "word_vectors.npy",
                                               "feature_check.json"}
    batch = collate([bundle.test[i] for i in range(2)])
    assert batch.video_feats.shape == (2, 8, DIM)
    # "sofa" is not a training word: dropped under the default policy
    words = ["person", "sits", "on", "a"]
    assert bundle.test[1].query_ids.tolist() == [bundle.vocab.id(w) for w in words]


def test_vocabulary_from_all_splits(toy):
    """``vocab_from: all`` (the default) gives a test-only word with a vector its own id;
    ``train`` drops it."""
    glove = toy.path(toy.word_vectors)
    sofa = np.arange(WDIM, dtype=np.float32) / 10
    glove.write_text(glove.read_text() + "sofa " + " ".join(str(x) for x in sofa) + "\n")
    only_train = build_data(cfg(vocab_from="train"), toy, None)
    assert "sofa" not in only_train.vocab
    everything = build_data(cfg(), toy, None)
    assert "sofa" in everything.vocab and "walks" not in everything.vocab    # no vector
    np.testing.assert_allclose(everything.word_vectors[everything.vocab.id("sofa")], sofa)
    ids = everything.test[1].query_ids.tolist()                  # "person sits on a sofa"
    assert ids == [everything.vocab.id(w) for w in ["person", "sits", "on", "a", "sofa"]]
    # the training words keep their vectors
    for w in ("person", "door"):
        np.testing.assert_array_equal(everything.word_vectors[everything.vocab.id(w)],
                                      only_train.word_vectors[only_train.vocab.id(w)])


def test_artifacts_are_reused_without_glove(toy, tmp_path):
    art = tmp_path / "artifacts"
    first = build_data(cfg(pca_dim=3), toy, art)
    (tmp_path / "glove.txt").unlink()
    second = build_data(cfg(pca_dim=3), toy, art)
    assert second.vocab.words == first.vocab.words
    np.testing.assert_array_equal(second.word_vectors, first.word_vectors)
    np.testing.assert_array_equal(second.pca.components, first.pca.components)
    np.testing.assert_allclose(second.train[0].video_feats, first.train[0].video_feats)
    vocab, vectors, pca = load_artifacts(art)
    assert vocab.words == first.vocab.words and pca.dim == 3
    with pytest.raises(ConfigError, match="PCA 3"):
        build_data(cfg(pca_dim=2), toy, art)
    with pytest.raises(ConfigError, match="oov"):
        build_data(cfg(pca_dim=3, oov="unk"), toy, art)


def test_pca_changes_video_dim(toy):
    bundle = build_data(cfg(pca_dim=3), toy, None)
    assert bundle.context().video_dim == 3 and bundle.pca.num_clips == 5 + 8 + 11 + 14
    assert bundle.train[0].video_feats.shape == bundle.test[0].video_feats.shape == (8, 3)
    with pytest.raises(ConfigError, match="pca_dim=7"):
        build_data(cfg(pca_dim=7), toy, None)


def test_split_overrides_and_holdout(toy):
    b = build_data(cfg(val_split="none"), toy, None)
    assert b.val is None and b.records("val") == [] and b.splits["val"] is None
    b = build_data(cfg(test_split="val", val_split="none"), toy, None)
    assert [r.query_id for r in b.records("test")] == ["d0"]
    with pytest.raises(ConfigError, match="'val_9' is not in dataset 'toy'"):
        build_data(cfg(test_split="val_9"), toy, None)
    h1 = build_data(cfg(val_split="none", val_holdout=0.25), toy, None)
    h2 = build_data(cfg(val_split="none", val_holdout=0.25), toy, None)
    train_v = {r.video_id for r in h1.records("train")}
    val_v = {r.video_id for r in h1.records("val")}
    assert len(val_v) == 1 and not train_v & val_v and train_v | val_v == {"v0", "v1", "v2", "v3"}
    assert [r.query_id for r in h2.records("val")] == [r.query_id for r in h1.records("val")]
    assert h1.split_name("val") == "train-holdout"


def test_card_without_word_vectors(toy):
    with pytest.raises(ConfigError, match="names no word_vectors"):
        build_data(cfg(), dataclasses.replace(toy, word_vectors=None), None)


def test_predict_helpers(toy, tmp_path):
    bundle = build_data(cfg(oov="zero"), toy, tmp_path / "art")
    feats, duration = bundle.video_features("v4")
    assert feats.shape == (17, DIM) and duration == 10.0
    batch = bundle.make_batch(feats, duration, ["person opens the door", "someone xyzzy"])
    assert batch.video_feats.shape == (2, 8, DIM) and batch.query_mask.sum(1).tolist() == [4, 2]
    assert batch.query_ids[1].tolist() == [UNK, UNK, 0, 0]
    assert batch.durations.tolist() == [10.0, 10.0]
    torch.testing.assert_close(batch.video_feats[0], collate([bundle.test[0]]).video_feats[0])
    assert bundle.dataset_for(None)[0] == "test" and bundle.dataset_for("val")[0] == "val"
    with pytest.raises(DataError, match="dimension 5"):
        bundle.make_batch(np.ones((3, 5)), 4.0, ["person"])
    with pytest.raises(ConfigError, match="no split 'nope'"):
        bundle.dataset_for("nope")
