"""Queries to word ids and frozen GloVe vectors (common spec 3.2).

Pipeline: :func:`tokenize` -> :class:`Vocabulary` built from the training queries ->
:func:`load_glove` reads only the vocabulary's words from a GloVe text file (cached as
``.npz``) -> :func:`build_embeddings` keeps the words that have a vector -> :class:`QueryEncoder`
turns a sentence into ``(ids (L,), vectors (L, Dw))`` under an OOV policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from momentloc.data.records import atomic_write_text
from momentloc.errors import DataError

log = logging.getLogger("momentloc.data")

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
OOVPolicy = Literal["drop", "zero", "unk"]
Tokenizer = Literal["glove", "whitespace", "whitespace_trim_period"]

# -- tokenization --------------------------------------------------------------------------
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
# letters/digits, allowing inner hyphens, apostrophes and dots (t-shirt, o'clock, 1.5)
_WORD = re.compile(r"[^\W_]+(?:[-'.][^\W_]+)*")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")


def tokenize(text: str, tokenizer: Tokenizer = "glove") -> list[str]:
    """Lowercase words of a sentence.

    ``glove``: punctuation tokens dropped, clitics split as in the Penn Treebank tokenization
    GloVe's vocabulary was built with: ``"person's" -> ["person", "'s"]``, ``"doesn't" ->
    ["does", "n't"]``. Inner hyphens, apostrophes and dots stay (``t-shirt``, ``o'clock``,
    ``1.5``). ``whitespace``: the sentence split at white space, as 2D-TAN's release reads
    it; punctuation stays on its word (``"door."``, ``"person's"``). ``whitespace_trim_period``:
    the same after removing one final ``.``, as the release's Charades-STA reader does (it
    cuts each annotation line at ``".\n"``).
    """
    if tokenizer == "whitespace_trim_period":
        return text.rstrip().removesuffix(".").lower().split()
    if tokenizer == "whitespace":
        return text.lower().split()
    if tokenizer != "glove":
        raise ValueError(f"unknown tokenizer {tokenizer!r} (glove, whitespace, "
                         f"whitespace_trim_period)")
    out = []
    for word in _WORD.findall(text.lower().translate(_QUOTES)):
        m = _CLITIC.match(word)
        out.extend(m.groups() if m else (word,))
    return out


# -- vocabulary ----------------------------------------------------------------------------
class Vocabulary:
    """Words and their ids: 0 is padding, 1 the unknown word, then words by frequency."""

    def __init__(self, words: Iterable[str] = ()):
        self.words: list[str] = [PAD_TOKEN, UNK_TOKEN]
        self.index: dict[str, int] = {PAD_TOKEN: PAD, UNK_TOKEN: UNK}
        for w in words:
            if w not in self.index:
                self.index[w] = len(self.words)
                self.words.append(w)

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_count: int = 1) -> "Vocabulary":
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        return cls(w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                   if c >= min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        """Id of ``word`` (UNK when absent)."""
        return self.index.get(word, UNK)

    def restrict(self, keep: set[str]) -> "Vocabulary":
        """A vocabulary of the words in ``keep`` only (order kept, ids renumbered)."""
        return Vocabulary(w for w in self.words[2:] if w in keep)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps({"words": self.words}, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        try:
            words = json.loads(Path(path).read_text(encoding="utf-8"))["words"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"not a vocabulary file ({e})", path=str(path)) from e
        if not isinstance(words, list) or words[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise DataError(f"a vocabulary starts with {PAD_TOKEN!r}, {UNK_TOKEN!r}",
                            path=str(path))
        if len(set(words)) != len(words):
            raise DataError("vocabulary has duplicate words", path=str(path))
        return cls(words[2:])


# -- GloVe ---------------------------------------------------------------------------------
@dataclass
class WordVectorTable:
    """Vectors of some words: ``vectors[i]`` belongs to ``words[i]``; ``(n, dim)`` float32."""

    words: list[str]
    vectors: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __len__(self) -> int:
        return len(self.words)

    def vector(self, word: str) -> np.ndarray:
        return self.vectors[self.index[word]]


def _infer_dim(path: Path, probe: int = 200) -> int:
    # the most common field count of the first lines; tokens with spaces are rare
    counts: Counter = Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(probe), f):
            n = line.rstrip().count(" ")
            if n > 0:
                counts[n] += 1
    if not counts:
        raise DataError("no usable line in word-vector file", path=str(path))
    return counts.most_common(1)[0][0]


def _parse_glove(path: Path, wanted: set[str], dim: int | None
                 ) -> tuple[dict[str, np.ndarray], int]:
    """Vectors of the ``wanted`` words in a GloVe text file (one full pass)."""
    dim = dim or _infer_dim(path)
    found: dict[str, np.ndarray] = {}
    usable = malformed = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip()
            seps = line.count(" ")
            if seps < dim:
                malformed += 1
                continue
            usable += 1
            # 840B has tokens containing spaces: the word is what precedes the last dim fields
            word = line[:line.index(" ")] if seps == dim else line.rsplit(" ", dim)[0]
            if word not in wanted or word in found:
                continue
            try:
                vec = np.array(line[len(word) + 1:].split(" "), dtype=np.float32)
            except ValueError:
                vec = None
            if vec is None or vec.shape != (dim,) or not np.isfinite(vec).all():
                malformed += 1
                continue
            found[word] = vec
    if usable == 0:
        raise DataError(f"no usable line (expected 'word v1 ... v{dim}')", path=str(path))
    if malformed:
        log.warning("%s: skipped %d malformed line(s)", path, malformed)
    return found, dim


def _cache_file(path: Path, cache_dir: Path) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return cache_dir / f"glove-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def load_glove(path: str | os.PathLike, words: Iterable[str],
               cache_dir: str | os.PathLike | None = None, dim: int | None = None
               ) -> WordVectorTable:
    """Read the vectors of ``words`` from a GloVe text file (``word v1 ... vd`` per line).

    Only the requested words are kept. With ``cache_dir`` they are cached in
    ``glove-<hash>.npz`` keyed by the file's path, size and mtime, together with the words
    that were asked for and not found, so a later call for the same (or a covered) word set
    never re-reads the text file; a call asking for new words re-reads it once and widens
    the cache.

    Args:
        dim: vector dimension; inferred from the first lines when None.

    Raises:
        DataError: the file is missing or has no usable line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("word-vector file not found", path=str(path))
    wanted = set(words)
    cache = _cache_file(path, Path(cache_dir)) if cache_dir is not None else None
    asked: set[str] = set()
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                cwords, cvecs = [str(w) for w in z["words"]], z["vectors"]
                asked = {str(w) for w in z["asked"]}
        except (OSError, ValueError, KeyError, EOFError):
            log.warning("%s: unreadable word-vector cache, re-reading %s", cache, path)
            cwords, asked = None, set()
        if cwords is not None and wanted <= asked and (dim is None or cvecs.shape[1] == dim):
            keep = [i for i, w in enumerate(cwords) if w in wanted]
            return WordVectorTable([cwords[i] for i in keep], cvecs[keep].astype(np.float32))
    ask = wanted | asked
    found, dim = _parse_glove(path, ask, dim)
    log.info("%s: %d of %d words have a vector", path, len(found), len(ask))
    ordered = sorted(found)
    vecs = np.stack([found[w] for w in ordered]) if ordered else np.zeros((0, dim), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, words=np.array(ordered, dtype=str), vectors=vecs,
                     asked=np.array(sorted(ask), dtype=str))
        os.replace(tmp, cache)
    keep = [i for i, w in enumerate(ordered) if w in wanted]
    return WordVectorTable([ordered[i] for i in keep], vecs[keep])


def build_embeddings(vocab: Vocabulary, table: WordVectorTable, oov: OOVPolicy = "drop",
                     seed: int = 0) -> tuple[Vocabulary, np.ndarray]:
    """Keep the vocabulary words that have a vector and stack their vectors.

    Words without a vector become out-of-vocabulary (counted and logged). Row 0 (padding) is
    zero; row 1 (unknown) is zero for ``drop`` and ``zero``, and for ``unk`` a fixed random
    vector with the mean norm of the others, so that even a frozen embedding tells unknown
    words apart from padding (a model that fine-tunes embeddings may learn it).

    Returns:
        ``(vocabulary, vectors (len(vocabulary), dim) float32)``.
    """
    missing = [w for w in vocab.words[2:] if w not in table]
    if missing:
        log.info("%d of %d vocabulary words have no word vector and are out of vocabulary "
                 "(e.g. %s)", len(missing), len(vocab) - 2, ", ".join(missing[:5]))
    kept = vocab.restrict(set(table.words))
    vectors = np.zeros((len(kept), table.dim), dtype=np.float32)
    if len(kept) > 2:
        vectors[2:] = table.vectors[[table.index[w] for w in kept.words[2:]]]
    if oov == "unk":
        rng = np.random.default_rng(seed)
        unk = rng.standard_normal(table.dim).astype(np.float32)
        scale = float(np.linalg.norm(vectors[2:], axis=1).mean()) if len(kept) > 2 else 1.0
        vectors[UNK] = unk / np.linalg.norm(unk) * scale
    return kept, vectors


# -- encoding ------------------------------------------------------------------------------
def encode_query(text: str, vocab: Vocabulary, max_len: int, oov: OOVPolicy = "drop",
                 query_id: str | None = None, tokenizer: Tokenizer = "glove") -> list[int]:
    """Word ids of a query (words of :func:`tokenize` with ``tokenizer``), at most ``max_len``.

    OOV policy: ``drop`` removes unknown words (keeping one UNK if none is left, so every
    query has a token); ``zero`` and ``unk`` map them to the UNK id (whose vector
    :func:`build_embeddings` makes zero or a fixed random vector).

    Raises:
        DataError: the query has no word (names ``query_id``).
    """
    tokens = tokenize(text, tokenizer)
    if not tokens:
        raise DataError(f"query {query_id!r} has no words: {text!r}")
    ids = [vocab.id(t) for t in tokens]
    if oov == "drop":
        ids = [i for i in ids if i != UNK] or [UNK]
    elif oov not in ("zero", "unk"):
        raise ValueError(f"unknown OOV policy {oov!r} (drop, zero, unk)")
    return ids[:max_len]


@dataclass
class QueryEncoder:
    """Sentence -> ``(ids (L,) int64, vectors (L, Dw) float32)`` with a fixed vocabulary."""

    vocab: Vocabulary
    word_vectors: np.ndarray
    max_len: int
    oov: OOVPolicy = "drop"
    tokenizer: Tokenizer = "glove"

    def encode(self, text: str, query_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(encode_query(text, self.vocab, self.max_len, self.oov, query_id,
                                      self.tokenizer), dtype=np.int64)
        return ids, self.word_vectors[ids]
