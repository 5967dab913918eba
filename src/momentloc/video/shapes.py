"""The shapes world: a rendered synthetic video benchmark (``momentloc synth --preset shapes``).

Each video (64 x 64 pixels, 8 fps, 12 to 20 s, H.264 mp4) shows two or three coloured
shapes (circle, square, triangle) on a dark background. Shapes appear (fade in), disappear
(fade out), move left, right, up or down, grow, shrink, or change colour; each event takes
2 to 5 s, and one shape's events never overlap. Every event gets one sentence, such as
"the red circle moves to the left" or "the blue square turns yellow", with its true
start and end: colours are unique within a video, so each sentence names one event.

Written into ``out_dir``:

- ``videos/<id>.mp4``;
- ``charades_sta_{train,test}.txt`` and ``Charades_v1_{train,test}.csv`` (Charades-STA
  format, through :func:`momentloc.data.converters.write_charades_sta`);
- ``shapes_glove.64d.txt``: GloVe-format word vectors for every word of the sentences;
- ``features_colorhist.hdf5`` and its sidecar: the features, made by the same code as
  ``momentloc extract videos --extractor colorhist --clip-rate 2 --out features_colorhist.hdf5``
  (run here, so the set is ready to train on);
- ``dataset.yaml``: the dataset card, whose features section records that extractor.

Size ``long`` (``momentloc synth --preset shapes --size long``) tests videos far longer than
a model's training videos: its train split is the ``small`` train split (the same 400 short
videos, for the same seed), and its test split is one video of :data:`LONG_MINUTES` minutes,
a sequence of scenes planned like the short videos (a cut between scenes) in which one event
per scene is kept, and only when its sentence is new to the video: every sentence names one
moment of the hour, known to the frame (scene offsets are whole seconds at 8 fps). Scenes
whose events all have sentences already used stay still. The long video is rendered and
encoded scene by scene, so memory does not grow with its length.

Everything except the encoder's bytes is a function of ``(size, seed)``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from momentloc.data.card import CardMetrics, DatasetCard, SplitFiles, save_card
from momentloc.data.records import MomentRecord
from momentloc.errors import ConfigError

log = logging.getLogger("momentloc.synth")

COLOURS = {"red": (225, 45, 45), "green": (45, 200, 70), "blue": (55, 90, 235),
           "yellow": (235, 215, 45), "purple": (165, 65, 210), "white": (235, 235, 235)}
SHAPES = ("circle", "square", "triangle")
KINDS = ("appears", "disappears", "left", "right", "up", "down", "grows", "shrinks", "recolour")
# One sentence per kind of event: a small, unambiguous language, so that a model trained on a
# tiny set learns the grounding rather than the paraphrases.
TEMPLATES = {
    "appears": "the {c} {s} appears",
    "disappears": "the {c} {s} disappears",
    "left": "the {c} {s} moves to the left",
    "right": "the {c} {s} moves to the right",
    "up": "the {c} {s} moves up",
    "down": "the {c} {s} moves down",
    "grows": "the {c} {s} grows",
    "shrinks": "the {c} {s} shrinks",
    "recolour": "the {c} {s} turns {n}",
}
MOVES = {"left": ("x", -0.3), "right": ("x", 0.3), "up": ("y", -0.3), "down": ("y", 0.3)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
SIZES = {"tiny": (60, 20), "small": (400, 100), "long": (400, 1)}   # videos in (train, test)
LONG_MINUTES = 60.0  # length of each test video of size long
FPS, FRAME, WORD_DIM = 8, 64, 64
CLIP_RATE = 2.0
FEATURES, GLOVE, CARD = "features_colorhist.hdf5", f"shapes_glove.{WORD_DIM}d.txt", "dataset.yaml"


@dataclass
class ShapeEvent:
    kind: str
    start: float
    end: float
    new_colour: str | None = None


@dataclass
class ShapeObject:
    shape: str
    colour: str
    x: float        # centre, fraction of the frame width
    y: float
    radius: float   # fraction of the frame side
    events: list[ShapeEvent] = field(default_factory=list)


@dataclass
class ShapeVideo:
    video_id: str
    split: str
    duration: float
    objects: list[ShapeObject]


def plan_video(video_id: str, split: str, rng: np.random.Generator) -> ShapeVideo:
    """Objects and their non-overlapping events, all inside the video."""
    duration = float(rng.integers(12, 21))
    n = int(rng.integers(2, 4))
    names = list(rng.permutation(list(COLOURS)))
    colours, spare = names[:n], names[n:]  # spare colours are targets of colour changes
    objects = []
    for colour in colours:
        obj = ShapeObject(str(rng.choice(SHAPES)), str(colour), float(rng.uniform(0.3, 0.7)),
                          float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.11, 0.15)))
        kinds = [str(k) for k in rng.permutation(KINDS)[:int(rng.integers(1, 3))]]
        # appearing opens and disappearing closes a shape's timeline; a colour change would
        # rename the shape for its later events, so it comes last too
        kinds.sort(key=lambda k: (k != "appears", k in ("disappears", "recolour")))
        if "disappears" in kinds and "recolour" in kinds:
            kinds.remove("recolour")
        # events keep their order; their starts are spread uniformly over the free time
        # (a fixed lead-in would give the prior baseline an easy guess)
        lengths = rng.uniform(2.0, 5.0, len(kinds))
        free = duration - 1.0 - lengths.sum() - 0.5 * (len(kinds) - 1)
        if free < 0:
            kinds, lengths = kinds[:1], lengths[:1]
            free = duration - 1.0 - lengths.sum()
        offsets = np.sort(rng.uniform(0.0, free, len(kinds)))
        x, y = obj.x, obj.y
        for i, (kind, length) in enumerate(zip(kinds, lengths)):
            start = 0.5 + offsets[i] + float(lengths[:i].sum()) + 0.5 * i
            # a move that would leave the frame goes the other way (the sentence follows)
            if kind in MOVES:
                axis, delta = MOVES[kind]
                pos = x if axis == "x" else y
                if not 0.15 <= pos + delta <= 0.85:
                    kind = OPPOSITE[kind]
                    delta = -delta
                x, y = (x + delta, y) if axis == "x" else (x, y + delta)
            new = str(spare.pop()) if kind == "recolour" and spare else None
            if kind == "recolour" and new is None:
                continue
            end = round(start + float(length), 1)
            obj.events.append(ShapeEvent(kind, round(start, 1), end, new))
        objects.append(obj)
    return ShapeVideo(video_id, split, duration, objects)


def _single_event(obj: ShapeObject, ev: ShapeEvent) -> ShapeEvent:
    """``ev`` as the only event of ``obj``: a move is planned after the object's earlier
    moves, so alone it may have to go the other way to stay in the frame."""
    if ev.kind not in MOVES:
        return ev
    axis, delta = MOVES[ev.kind]
    pos = obj.x if axis == "x" else obj.y
    if 0.15 <= pos + delta <= 0.85:
        return ev
    return ShapeEvent(OPPOSITE[ev.kind], ev.start, ev.end, ev.new_colour)


def _sentence(obj: ShapeObject, ev: ShapeEvent) -> str:
    return TEMPLATES[ev.kind].format(c=obj.colour, s=obj.shape, n=ev.new_colour)


def plan_long_video(video_id: str, split: str, minutes: float, rng: np.random.Generator
                    ) -> list[tuple[float, ShapeVideo]]:
    """``(offset in seconds, scene)`` pairs of a long video (module doc): scenes planned by
    :func:`plan_video` until ``minutes`` are reached, each keeping at most one event, whose
    sentence no earlier scene used."""
    used: set[str] = set()
    scenes: list[tuple[float, ShapeVideo]] = []
    offset = 0.0
    while offset < minutes * 60.0:
        scene = plan_video(f"{video_id}-{len(scenes)}", split, rng)
        options = [(i, _single_event(obj, ev)) for i, obj in enumerate(scene.objects)
                   for ev in obj.events]
        kept = None
        for j in rng.permutation(len(options)):
            i, ev = options[int(j)]
            if _sentence(scene.objects[i], ev) not in used:
                kept = (i, ev)
                break
        for i, obj in enumerate(scene.objects):
            obj.events = [kept[1]] if kept is not None and kept[0] == i else []
            if kept is not None and kept[0] == i:
                used.add(_sentence(obj, kept[1]))
        scenes.append((offset, scene))
        offset += scene.duration
    return scenes


def long_sentences(scenes: list[tuple[float, ShapeVideo]]) -> list[tuple[str, float, float]]:
    """``(sentence, start, end)`` in seconds of the whole video, by start time."""
    out = [(text, round(offset + s, 1), round(offset + e, 1))
           for offset, scene in scenes for text, s, e in sentences(scene)]
    return sorted(out, key=lambda q: (q[1], q[0]))


def long_frames(scenes: list[tuple[float, ShapeVideo]]) -> Iterator[np.ndarray]:
    """The frames of a long video, rendered one scene at a time."""
    for _, scene in scenes:
        yield from render(scene)


def _tracks(obj: ShapeObject, times: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame ``x, y, radius, alpha (T,)`` and ``rgb (T, 3)`` by piecewise-linear keyframes."""
    keys = {"x": [(0.0, obj.x)], "y": [(0.0, obj.y)], "radius": [(0.0, obj.radius)],
            "alpha": [(0.0, 0.0 if obj.events and obj.events[0].kind == "appears" else 1.0)]}
    rgb = [(0.0, np.array(COLOURS[obj.colour], float))]
    for ev in obj.events:
        if ev.kind in MOVES:
            name, delta = MOVES[ev.kind]
            v = keys[name][-1][1]
            keys[name] += [(ev.start, v), (ev.end, v + delta)]
        elif ev.kind in ("grows", "shrinks"):
            v = keys["radius"][-1][1]
            keys["radius"] += [(ev.start, v), (ev.end, v * (1.7 if ev.kind == "grows" else 0.55))]
        elif ev.kind in ("appears", "disappears"):
            a = 1.0 if ev.kind == "appears" else 0.0
            keys["alpha"] += [(ev.start, 1.0 - a), (ev.end, a)]
        elif ev.kind == "recolour":
            rgb += [(ev.start, rgb[-1][1]), (ev.end, np.array(COLOURS[ev.new_colour], float))]
    out = {}
    for name, pts in keys.items():
        t, v = zip(*pts)
        out[name] = np.interp(times, t, v)
    t, v = zip(*rgb)
    out["rgb"] = np.stack([np.interp(times, t, np.array(v)[:, c]) for c in range(3)], axis=1)
    return out


def render(video: ShapeVideo, size: int = FRAME, fps: int = FPS) -> np.ndarray:
    """``(T, size, size, 3)`` uint8 frames (T = duration * fps), vectorized over frames."""
    times = (np.arange(int(round(video.duration * fps))) + 0.5) / fps
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size                   # (H, W)
    frames = np.full((len(times), size, size, 3), 28.0)
    for obj in video.objects:
        tr = _tracks(obj, times)
        dx = xx[None] - tr["x"][:, None, None]                          # (T, H, W)
        dy = yy[None] - tr["y"][:, None, None]
        r = tr["radius"][:, None, None]
        if obj.shape == "circle":
            mask = dx ** 2 + dy ** 2 <= r ** 2
        elif obj.shape == "square":
            mask = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
        else:  # triangle, apex up
            mask = (dy >= -r) & (dy <= 0.7 * r) & (np.abs(dx) <= 0.6 * (dy + r))
        a = mask * tr["alpha"][:, None, None]                           # (T, H, W)
        frames = frames * (1 - a[..., None]) + tr["rgb"][:, None, None, :] * a[..., None]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def sentences(video: ShapeVideo) -> list[tuple[str, float, float]]:
    """``(sentence, start, end)`` for every event of the video, by start time."""
    out = [(TEMPLATES[ev.kind].format(c=obj.colour, s=obj.shape, n=ev.new_colour), ev.start, ev.end)
           for obj in video.objects for ev in obj.events]
    return sorted(out, key=lambda q: (q[1], q[0]))


def vocabulary() -> list[str]:
    """Every word a sentence can use."""
    from momentloc.data.text import tokenize

    words = set(COLOURS) | set(SHAPES)
    for template in TEMPLATES.values():
        words.update(tokenize(template.format(c="", s="", n="")))
    return sorted(words)


def synthesize_shapes(size: str, seed: int, out_dir: str | os.PathLike, *, overwrite: bool = False,
                      label_jitter: float | None = None, extract: bool = True,
                      videos: tuple[int, int] | None = None, long_minutes: float = LONG_MINUTES):
    """Render the shapes world and (with ``extract``) its colorhist features.

    Args:
        size: ``tiny``, ``small`` or ``long`` (number of train / test videos, :data:`SIZES`;
            ``long`` test videos last ``long_minutes``, see the module doc).
        videos: ``(train, test)`` video counts instead of the size's (quick tests).

    Returns:
        :class:`momentloc.synth.SynthSummary`.
    Raises:
        ConfigError: unknown size, a label jitter other than 0 (labels here are exact), or
            a non-empty ``out_dir`` without ``overwrite``.
    """
    from momentloc.data.converters import write_charades_sta
    from momentloc.synth.generate import SynthSummary
    from momentloc.synth.wordvec import write_glove
    from momentloc.video.encode import write_video

    if size not in SIZES:
        raise ConfigError(f"the shapes preset has sizes {', '.join(SIZES)}, not {size!r}")
    if label_jitter:
        raise ConfigError("the shapes preset writes exact labels; label_jitter must be 0")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: directory is not empty (pass overwrite=True / --overwrite)")
    from momentloc.engine.runtime import progress

    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 9001]))
    records: dict[str, list[MomentRecord]] = {}
    counts: dict[str, int] = {}
    for split, count in zip(("train", "test"), videos or SIZES[size]):
        records[split] = []
        counts[split] = count
        for i in progress(range(count), desc=f"render {split} videos", unit="video"):
            video_id = f"{split[:2]}{i:04d}"
            if size == "long" and split == "test":
                scenes = plan_long_video(video_id, split, long_minutes, rng)
                frames, moments = long_frames(scenes), long_sentences(scenes)
                duration = scenes[-1][0] + scenes[-1][1].duration
            else:
                video = plan_video(video_id, split, rng)
                frames, moments, duration = render(video), sentences(video), video.duration
            write_video(out / "videos" / f"{video_id}.mp4", frames, fps=FPS)
            for text, s, e in moments:
                records[split].append(MomentRecord(f"{split}:{len(records[split])}",
                                                   video_id, duration, text, (s, e), (), split))
        write_charades_sta(records[split], out / f"charades_sta_{split}.txt",
                           out / f"Charades_v1_{split}.csv")
    vec_rng = np.random.default_rng(np.random.SeedSequence([seed, 9002]))
    write_glove(out / GLOVE, [(w, (0.4 * vec_rng.standard_normal(WORD_DIM)).astype(np.float32))
                              for w in vocabulary()])
    spec = None
    if extract:
        from momentloc.video.extract import extract_directory
        from momentloc.video.extractors import create_extractor

        extractor = create_extractor("colorhist", clip_rate=CLIP_RATE, max_side=FRAME)
        spec = extract_directory(out / "videos", extractor, out / FEATURES).spec
    card = DatasetCard(
        name=f"synth-shapes-{size}", format="charades_sta",
        splits={s: SplitFiles(f"charades_sta_{s}.txt", f"Charades_v1_{s}.csv") for s in records},
        roles={"train": "train", "val": None, "test": "test"}, features=spec, word_vectors=GLOVE,
        metrics=CardMetrics(recall_at=(1, 5), iou_thresholds=(0.3, 0.5, 0.7)),
        notes=(f"Rendered synthetic shapes world written by 'momentloc synth --preset shapes' "
               f"(size {size}, seed {seed}): {FRAME}x{FRAME} H.264 videos at {FPS} fps in videos/, "
               f"one sentence per event with its exact span. "
               + (f"The test videos last {long_minutes:g} minutes, one new sentence per scene "
                  f"at most. " if size == "long" else "") + "Features: "
               + (f"written by 'momentloc extract videos --extractor colorhist --clip-rate "
                  f"{CLIP_RATE:g} --param max_side={FRAME} --out {FEATURES}' (run by synth)."
                  if spec else "none yet: run 'momentloc extract' on videos/ and add its "
                               "sidecar's features section here.")))
    save_card(card, out / CARD)
    files = sorted(p.name for p in out.iterdir() if p.is_file())  # and videos/
    seconds = time.perf_counter() - t0
    log.info("shapes world (%s, seed %d): %d videos in %.1f s", size, seed, sum(counts.values()),
             seconds)
    return SynthSummary(out / CARD, tuple(files), {s: len(r) for s, r in records.items()}, counts,
                        spec.dim if spec else 0, seconds)
