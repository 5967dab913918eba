import logging

import numpy as np
import pytest

import momentloc.data.text as text
from momentloc.data.text import (
    PAD, UNK, QueryEncoder, Vocabulary, build_embeddings, encode_query, load_glove, tokenize)
from momentloc.errors import DataError


@pytest.mark.parametrize("sentence,tokens", [
    ("Person turn a light on.", ["person", "turn", "a", "light", "on"]),
    (" The person's hand, then ... sits!", ["the", "person", "'s", "hand", "then", "sits"]),
    ("He doesn't put on a t-shirt", ["he", "does", "n't", "put", "on", "a", "t-shirt"]),
    ("It’s 1.5 o'clock (approx.)", ["it", "'s", "1.5", "o'clock", "approx"]),
    ("the players' ball -- again", ["the", "players", "ball", "again"]),
    ("...!?", []),
])
def test_tokenize(sentence, tokens):
    assert tokenize(sentence) == tokens


def test_vocabulary_order_ids_and_round_trip(tmp_path):
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a"]])
    assert vocab.words == ["<pad>", "<unk>", "a", "c", "b"]       # by count, ties alphabetical
    assert vocab.id("a") == 2 and vocab.id("zzz") == UNK and len(vocab) == 5
    assert Vocabulary.build([["b", "a", "a"]], min_count=2).words[2:] == ["a"]
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").words == vocab.words
    assert vocab.restrict({"b", "a"}).words == ["<pad>", "<unk>", "a", "b"]


@pytest.mark.parametrize("content,pattern", [
    ("not json", "not a vocabulary file"),
    ('{"words": ["a", "b"]}', "starts with"),
    ('{"words": ["<pad>", "<unk>", "a", "a"]}', "duplicate"),
])
def test_vocabulary_load_bad(tmp_path, content, pattern):
    (tmp_path / "v.json").write_text(content)
    with pytest.raises(DataError, match=pattern) as e:
        Vocabulary.load(tmp_path / "v.json")
    assert "v.json" in str(e.value)


# -- GloVe ---------------------------------------------------------------------------------
GLOVE = """the 0.1 0.2 0.3
person 1 2 3
. . . 7 8 9
light -1 -2 -3e-1
broken 1 2
nan_word 1 nan 3
bad_number 1 x 3
turn 4 5 6
person 9 9 9
"""


def write_glove(tmp_path, content=GLOVE):
    path = tmp_path / "glove.txt"
    path.write_text(content, encoding="utf-8")
    return path


def test_glove_reads_only_wanted_words(tmp_path, caplog):
    path = write_glove(tmp_path)
    with caplog.at_level(logging.WARNING, logger="momentloc.data"):
        table = load_glove(path, ["person", "light", ". . .", "broken", "nan_word", "bad_number",
                                  "absent"])
    # a token with spaces is split off from the right
    assert sorted(table.words) == [". . .", "light", "person"]
    assert table.dim == 3
    np.testing.assert_allclose(table.vector("light"), [-1, -2, -0.3])
    np.testing.assert_array_equal(table.vector("person"), [1, 2, 3])   # first occurrence wins
    np.testing.assert_array_equal(table.vector(". . ."), [7, 8, 9])
    assert "skipped 3 malformed line(s)" in caplog.text               # broken, nan_word, bad_number


def test_glove_explicit_dim_and_header_line(tmp_path):
    path = write_glove(tmp_path, "2 3\nthe 1 2 3\nand 4 5 6\n")         # word2vec-style header
    assert load_glove(path, ["and"], dim=3).words == ["and"]
    assert load_glove(path, ["and"]).dim == 3


@pytest.mark.parametrize("content", ["", "word\nother\n", "\n\n"])
def test_glove_without_usable_line(tmp_path, content):
    path = write_glove(tmp_path, content)
    with pytest.raises(DataError, match="no usable line") as e:
        load_glove(path, ["word"])
    assert "glove.txt" in str(e.value)


def test_glove_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_glove(tmp_path / "nope.txt", ["a"])


def test_glove_cache_is_reused_without_reading_the_text(tmp_path, monkeypatch):
    path = write_glove(tmp_path)
    cache = tmp_path / "cache"
    calls = []
    real = text._parse_glove
    monkeypatch.setattr(text, "_parse_glove", lambda *a: calls.append(a[1]) or real(*a))
    first = load_glove(path, ["person", "turn", "absent"], cache_dir=cache)
    assert len(calls) == 1 and len(list(cache.glob("glove-*.npz"))) == 1
    # the same words, a subset, and a known-absent word: served from the cache
    again = load_glove(path, ["turn", "person"], cache_dir=cache)
    assert load_glove(path, ["absent"], cache_dir=cache).words == []
    assert len(calls) == 1
    assert sorted(again.words) == sorted(first.words) == ["person", "turn"]
    np.testing.assert_array_equal(again.vector("turn"), first.vector("turn"))
    # a new word re-reads once and widens the cache
    assert sorted(load_glove(path, ["light"], cache_dir=cache).words) == ["light"]
    assert len(calls) == 2 and calls[1] >= {"light", "person", "turn", "absent"}
    load_glove(path, ["light", "person", "turn"], cache_dir=cache)
    assert len(calls) == 2


def test_glove_cache_key_follows_the_file(tmp_path):
    path = write_glove(tmp_path)
    cache = tmp_path / "cache"
    load_glove(path, ["turn"], cache_dir=cache)
    path.write_text("turn 0 0 1 0\n")                                  # new content, size, mtime
    table = load_glove(path, ["turn"], cache_dir=cache)
    np.testing.assert_array_equal(table.vector("turn"), [0, 0, 1, 0])
    assert len(list(cache.glob("glove-*.npz"))) == 2


# -- embeddings and encoding ---------------------------------------------------------------
def setup_vocab(tmp_path, oov="drop"):
    vocab = Vocabulary.build([["person", "turn", "light", "on"], ["person", "xyzzy"]])
    table = load_glove(write_glove(tmp_path), vocab.words[2:])
    return build_embeddings(vocab, table, oov)


def test_build_embeddings_drops_words_without_vectors(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="momentloc.data"):
        vocab, vectors = setup_vocab(tmp_path)
    assert vocab.words == ["<pad>", "<unk>", "person", "light", "turn"]
    assert "2 of 5 vocabulary words have no word vector" in caplog.text   # "on", "xyzzy"
    assert vectors.shape == (5, 3) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[:2], 0)
    np.testing.assert_array_equal(vectors[vocab.id("turn")], [4, 5, 6])


def test_unk_policy_gives_unknown_words_a_fixed_vector(tmp_path):
    _, zero = setup_vocab(tmp_path, "zero")
    _, unk = setup_vocab(tmp_path, "unk")
    np.testing.assert_array_equal(zero[UNK], 0)
    assert np.linalg.norm(unk[UNK]) > 0 and not unk[PAD].any()
    np.testing.assert_array_equal(unk, setup_vocab(tmp_path, "unk")[1])   # seeded
    np.testing.assert_array_equal(unk[2:], zero[2:])


def test_encode_query_oov_policies(tmp_path):
    vocab, _ = setup_vocab(tmp_path)
    p, t, li = vocab.id("person"), vocab.id("turn"), vocab.id("light")
    q = "Person xyzzy turn on the light."
    assert encode_query(q, vocab, 10, "drop") == [p, t, li]
    assert encode_query(q, vocab, 10, "zero") == [p, UNK, t, UNK, UNK, li]
    assert encode_query(q, vocab, 10, "unk") == [p, UNK, t, UNK, UNK, li]
    assert encode_query(q, vocab, 2, "drop") == [p, t]                   # truncated after dropping
    assert encode_query("xyzzy foo", vocab, 10, "drop") == [UNK]        # keeps one token
    with pytest.raises(DataError, match="'q7' has no words"):
        encode_query(" ?! ", vocab, 10, "drop", query_id="q7")
    with pytest.raises(ValueError, match="OOV"):
        encode_query(q, vocab, 10, "ignore")


def test_query_encoder_vectors(tmp_path):
    vocab, vectors = setup_vocab(tmp_path, "zero")
    ids, vecs = QueryEncoder(vocab, vectors, 4, "zero").encode("turn xyzzy light")
    assert ids.dtype == np.int64 and ids.tolist() == [vocab.id("turn"), UNK, vocab.id("light")]
    np.testing.assert_allclose(vecs, [[4, 5, 6], [0, 0, 0], [-1, -2, -0.3]])


@pytest.mark.parametrize("sentence,tokens", [
    ("Person turn a light on.", ["person", "turn", "a", "light", "on."]),
    (" The person's hand, then ... sits!", ["the", "person's", "hand,", "then", "...", "sits!"]),
    ("He doesn't\tput on a T-shirt\n", ["he", "doesn't", "put", "on", "a", "t-shirt"]),
    ("  ", []),
])
def test_whitespace_tokenizer_is_the_release_split(sentence, tokens):
    assert tokenize(sentence, "whitespace") == tokens == [w.lower() for w in sentence.split()]
    with pytest.raises(ValueError, match="unknown tokenizer 'spacy'"):
        tokenize(sentence, "spacy")


@pytest.mark.parametrize("sentence,tokens", [
    ("Person opens the door.", ["person", "opens", "the", "door"]),
    ("person's hand, then sits.. ", ["person's", "hand,", "then", "sits."]),  # one "." only
    ("a person smiles", ["a", "person", "smiles"]),
    (".", []),
])
def test_trim_period_tokenizer_is_the_release_charades_reader(sentence, tokens):
    assert tokenize(sentence, "whitespace_trim_period") == tokens
    # the release: the annotation line cut at ".\n", then split() and lowercased
    line = sentence.rstrip() + "\n"
    assert tokens == [w.lower() for w in line.split(".\n")[0].split()]


def test_whitespace_vocabulary_keeps_punctuated_words_unknown_with_a_zero_vector(tmp_path):
    queries = ["Person turn on the light.", "the person turn"]
    vocab = Vocabulary.build(tokenize(q, "whitespace") for q in queries)
    assert "light." in vocab and "light" not in vocab
    table = load_glove(write_glove(tmp_path), vocab.words[2:])
    kept, vectors = build_embeddings(vocab, table, "zero")
    assert "light." not in kept  # no GloVe vector: the unknown word, a zero vector
    enc = QueryEncoder(kept, vectors, 10, "zero", "whitespace")
    ids, vecs = enc.encode("Person turn on the light.")
    assert ids.tolist() == [kept.id("person"), kept.id("turn"), UNK, kept.id("the"), UNK]
    np.testing.assert_array_equal(vecs[-1], 0)
    # the same sentence under the default tokenizer reads "light" with its vector
    glove_vocab, glove_vectors = build_embeddings(
        Vocabulary.build(tokenize(q) for q in queries),
        load_glove(write_glove(tmp_path), ["person", "turn", "on", "the", "light"]), "zero")
    _, gvecs = QueryEncoder(glove_vocab, glove_vectors, 10, "zero").encode(queries[0])
    np.testing.assert_allclose(gvecs[-1], [-1, -2, -0.3])


def test_the_release_presets_select_the_white_space_tokenizer():
    from momentloc.config import load_config

    for preset in ("activitynet", "activitynet_conv", "tacos", "tacos_conv"):
        assert load_config("tan2d", preset).data.tokenizer == "whitespace", preset
    for preset in ("charades", "charades_conv"):  # the release's reader cuts the final "."
        assert load_config("tan2d", preset).data.tokenizer == "whitespace_trim_period", preset
    for preset in ("activitynet", "tacos", "charades", "charades_conv"):
        assert load_config("tan2d", preset, ["data.tokenizer=glove"]).data.tokenizer == "glove"
    assert load_config("tan2d", "synthetic").data.tokenizer == "glove"  # the measured setting
    assert load_config("csmgan", "charades").data.tokenizer == "glove"
