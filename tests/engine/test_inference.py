"""Predictor: typed results, unknown words, input checks, the feature cache."""

import json
import math

import numpy as np
import pytest

from momentloc.data.converters import load_split
from momentloc.engine.inference import MAX_QUERY_CHARS, Moment, Prediction, Predictor
from momentloc.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def predictor(shapes_run, tmp_path_factory):
    _, run_dir = shapes_run
    return Predictor(run_dir, cache_dir=tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="module")
def record(predictor):
    return load_split(predictor.card, "test")[0]


def test_prediction_json_shape_and_round_trip(predictor, record):
    (p,) = predictor.predict(record.video_id, record.query, top_k=3)
    d = p.to_dict()
    assert list(d) == ["video", "query", "duration", "moments", "unknown_words", "warning"]
    assert d["video"] == record.video_id and d["query"] == record.query
    assert d["duration"] == pytest.approx(record.duration)
    assert d["unknown_words"] == [] and d["warning"] is None
    assert 1 <= len(d["moments"]) <= 3
    assert [list(m) for m in d["moments"]] == [["rank", "start", "end", "score"]] * len(d["moments"])
    assert [m["rank"] for m in d["moments"]] == list(range(1, len(d["moments"]) + 1))
    scores = [m["score"] for m in d["moments"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= m["start"] <= m["end"] <= record.duration + 1e-6 for m in d["moments"])
    again = Prediction.from_dict(json.loads(json.dumps(d)))
    assert again == p


def test_predict_features_equals_localize(predictor, record):
    feats, duration = predictor.data.video_features(record.video_id)
    queries = [record.query, "the blue square moves to the left"]
    preds = predictor.predict_features(feats, duration, queries, top_k=4, video="v")
    moments = predictor.localize(feats, duration, queries, top_k=4)
    assert [p.moments for p in preds] == moments
    assert [p.query for p in preds] == queries and {p.video for p in preds} == {"v"}
    # a query scored alone gets the same moments as in a batch
    assert predictor.localize(feats, duration, [queries[1]], 4)[0] == moments[1]


def test_unknown_words(predictor, record):
    feats, duration = predictor.data.video_features(record.video_id)
    only_unknown, some_unknown, clean = predictor.predict_features(
        feats, duration, ["zorblat quuxing", record.query + " zorblat", record.query])
    assert only_unknown.moments == []
    assert only_unknown.unknown_words == ["zorblat", "quuxing"]
    assert "none of the query's words" in only_unknown.warning
    assert only_unknown.to_dict()["moments"] == []
    assert some_unknown.unknown_words == ["zorblat"]
    assert "zorblat" in some_unknown.warning and "ignored" in some_unknown.warning
    # the run drops unknown words (data.oov=drop): the rest is read as the clean query
    assert predictor.cfg.data.oov == "drop"
    assert some_unknown.moments == clean.moments
    assert clean.unknown_words == [] and clean.warning is None


def test_long_queries(predictor, record):
    feats, duration = predictor.data.video_features(record.video_id)
    limit = predictor.cfg.data.max_query_len
    words = (record.query.split() * limit)[:limit + 3]
    (p,) = predictor.predict_features(feats, duration, " ".join(words))
    assert p.moments and f"only the first {limit} of {limit + 3} words" in p.warning
    with pytest.raises(ConfigError, match=f"too long \\(at most {MAX_QUERY_CHARS}\\)"):
        predictor.predict_features(feats, duration, "red " * 400)


@pytest.mark.parametrize("duration", [math.nan, math.inf, -math.inf, 0.0, -3.0, "abc", None])
def test_bad_durations(predictor, record, duration):
    feats, _ = predictor.data.video_features(record.video_id)
    with pytest.raises(ConfigError, match="duration"):
        predictor.predict_features(feats, duration, record.query)
    with pytest.raises(ConfigError, match="duration"):
        predictor.predict(feats, record.query, duration=duration)


def test_bad_inputs(predictor, record, tmp_path):
    feats, duration = predictor.data.video_features(record.video_id)
    with pytest.raises(ConfigError, match="no query"):
        predictor.predict_features(feats, duration, [])
    for bad in ["", "   ", "?!"]:
        with pytest.raises(ConfigError, match="has no words"):
            predictor.predict_features(feats, duration, bad)
    with pytest.raises(ConfigError, match="must be a string"):
        predictor.predict_features(feats, duration, [3])
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        predictor.predict_features(feats, duration, record.query, top_k=0)
    with pytest.raises(DataError, match="dimension"):
        predictor.predict_features(feats[:, :5], duration, "zorblat")   # checked even unscored
    with pytest.raises(DataError, match="NaN"):
        predictor.predict_features(np.full_like(feats, np.nan), duration, record.query)
    npy = tmp_path / "f.npy"
    np.save(npy, feats)
    with pytest.raises(ConfigError, match="a duration"):
        predictor.predict(npy, record.query)
    (p,) = predictor.predict(npy, record.query, duration=duration)
    assert p.video == "f" and p.moments
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(ConfigError, match="junk.npy: not a NumPy array file"):
        predictor.predict(tmp_path / "junk.npy", record.query, duration=duration)
    with pytest.raises(ConfigError, match="nope.mp4: no such video file"):
        predictor.predict(tmp_path / "nope.mp4", record.query)
    with pytest.raises(ConfigError, match="not a video file, a .npy features file or a video id"):
        predictor.predict("no-such-id", record.query)


def test_feature_cache(shapes_run, tmp_path, monkeypatch):
    world, run_dir = shapes_run
    pred = Predictor(run_dir, cache_dir=tmp_path / "cache")
    video = tmp_path / "clip.mp4"
    video.write_bytes(next((world / "videos").glob("*.mp4")).read_bytes())
    feats, duration = pred.extract_features(video)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    calls = []
    original = type(pred.extractor).extract
    monkeypatch.setattr(type(pred.extractor), "extract",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    cached, cached_duration = pred.extract_features(video)
    assert calls == [] and np.array_equal(cached, feats) and cached_duration == duration
    # a changed file (other mtime) is extracted again, into a second entry
    st = video.stat()
    import os

    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    pred.extract_features(video)
    assert calls == [1] and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    # a broken entry is extracted again, not an error
    for f in (tmp_path / "cache").glob("*.npz"):
        f.write_bytes(b"broken")
    again, _ = pred.extract_features(video)
    assert calls == [1, 1] and np.array_equal(again, feats)
    # features of another extractor (other settings) are another entry
    from momentloc.video.extractors import create_extractor

    other = Predictor(run_dir, cache_dir=tmp_path / "cache")
    other._extractor = create_extractor("colorhist", grid=2)
    assert other.extractor.id != pred.extractor.id
    assert other._cache_file(video) != pred._cache_file(video)
    # no cache at all
    Predictor(run_dir, cache_dir=False).extract_features(video)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_moment_dict():
    assert Moment(1.0, 2.5, 0.75, 2).to_dict() == {"rank": 2, "start": 1.0, "end": 2.5, "score": 0.75}
