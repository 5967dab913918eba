"""Plan videos and queries, render features and write a synthetic benchmark in a real format.

Files written into ``out_dir`` (names per preset):

- annotations in the benchmark's own format, through :mod:`momentloc.data.converters`
  (Charades-STA txt + durations CSV; ActivityNet Captions JSON; TACoS 2D-TAN JSON in frames);
- one HDF5 feature file through :func:`momentloc.data.features.write_hdf5_store`;
- ``synthetic_glove.<d>d.txt``: GloVe-format word vectors;
- ``events.jsonl``: the ground truth per video (events, query kinds, exact spans, labels);
- ``dataset.yaml``: the dataset card naming all of the above.

Everything is a function of ``(preset, size, seed, label_jitter)``: the same arguments write
the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from momentloc.data.card import CardMetrics, DatasetCard, FeatureSpec, SplitFiles, save_card
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import ConfigError
from momentloc.synth.language import QuerySpec, Renderer
from momentloc.synth.presets import Preset, get_preset
from momentloc.synth.videos import (
    Target,
    choose_targets,
    enumerate_targets,
    event_timings,
    related_types,
    sample_event_types,
    sample_timing,
)
from momentloc.synth.wordvec import word_vectors, write_glove
from momentloc.synth.world import EventTiming, World

log = logging.getLogger("momentloc.synth")

GENERATOR_VERSION = 1
CARD_NAME = "dataset.yaml"
EVENTS_NAME = "events.jsonl"


@dataclass
class PlannedQuery:
    target: Target
    text: str
    span: tuple[float, float]    # exact span of the target events
    label: tuple[float, float]   # as written to the annotation file (jittered on train)


@dataclass
class PlannedVideo:
    video_id: str
    split: str
    index: int                   # global video index: seeds the video's features
    duration: float
    scene: int
    num_clips: int
    events: list[EventTiming]
    queries: list[PlannedQuery] = field(default_factory=list)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote: the card, every file, per-split counts, timing."""

    card_path: Path
    files: tuple[str, ...]
    queries: dict[str, int]
    videos: dict[str, int]
    feature_dim: int
    seconds: float


# -- formats ---------------------------------------------------------------------------------
def split_files(preset: Preset, split: str) -> SplitFiles:
    if preset.format == "charades_sta":
        return SplitFiles(f"charades_sta_{split}.txt", f"Charades_v1_{split}.csv")
    return SplitFiles(f"{split}.json")


def quantize_duration(preset: Preset, duration: float) -> float:
    """The duration as the format stores it (TACoS: whole frames at ``tacos_fps``)."""
    if preset.format == "tacos":
        return round(duration * preset.tacos_fps) / preset.tacos_fps
    return round(duration, 2)


def quantize_span(preset: Preset, start: float, end: float, duration: float) -> tuple[float, float]:
    """A span as the format stores it: 0.1 s (Charades-STA), 0.01 s (ActivityNet), frames
    (TACoS); the end never passes the duration and the span keeps a positive length."""
    if preset.format == "tacos":
        fps = preset.tacos_fps
        last = round(duration * fps)
        s = min(round(start * fps), last - 1)
        e = min(max(round(end * fps), s + 1), last)
        return s / fps, e / fps
    step = 0.1 if preset.format == "charades_sta" else 0.01
    s = round(round(start / step) * step, 2)
    e = round(round(end / step) * step, 2)
    if e > duration:
        e = round(math.floor(duration / step + 1e-9) * step, 2)
    s = min(s, round(e - step, 2))
    return max(s, 0.0), e


def _video_id_maker(preset: Preset, rng: np.random.Generator):
    used: set[str] = set()
    upper = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    youtube = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))

    def make() -> str:
        while True:
            if preset.format == "charades_sta":
                vid = "".join(rng.choice(upper, 5))
            elif preset.format == "activitynet":
                vid = "v_" + "".join(rng.choice(youtube, 11))
            else:
                vid = f"s{rng.integers(10, 100)}-d{rng.integers(10, 100)}.avi"
            if vid not in used:
                used.add(vid)
                return vid

    return make


# -- planning --------------------------------------------------------------------------------
def _label(preset: Preset, span, duration: float, jitter: float, rng) -> tuple[float, float]:
    s, e = span
    if jitter > 0:  # annotator disagreement: each boundary moves by N(0, (jitter * length)^2)
        length = e - s
        js, je = np.clip([s, e] + rng.normal(0.0, jitter * length, 2), 0.0, duration)
        if je - js >= 0.5 * length:
            s, e = float(js), float(je)
    return quantize_span(preset, s, e, duration)


def plan_split(preset: Preset, world: World, split: str, count: int, first_index: int,
               jitter: float, seed: int, new_id) -> list[PlannedVideo]:
    """Videos of one split with exactly ``count`` queries (the last video is cut short)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 201, preset.splits.index(split)]))
    renderer = Renderer(preset.domain, preset.style)
    related = related_types(world)
    timing, mix = preset.timing, preset.mix
    videos: list[PlannedVideo] = []
    total = 0
    while total < count:
        n = int(rng.integers(timing.num_events[0], timing.num_events[1] + 1))
        types = sample_event_types(world, related, n, mix, rng)
        starts, ends, duration = sample_timing(n, timing, rng)
        duration = quantize_duration(preset, duration)
        events = event_timings(types, starts, np.minimum(ends, duration))
        video = PlannedVideo(new_id(), split, first_index + len(videos), duration,
                             int(rng.integers(preset.num_scenes)),
                             max(1, round(duration * preset.features.rate)), events)
        for target in choose_targets(enumerate_targets(types), mix, rng):
            pairs = tuple(tuple(int(x) for x in world.event_types[types[m]]) for m in target.mentions)
            spec = QuerySpec(target.kind, pairs, target.ordinal)
            span = (events[target.first].start, events[target.last].end)
            lo, hi = mix.paraphrases
            texts = dict.fromkeys(renderer.render(spec, rng) for _ in range(rng.integers(lo, hi + 1)))
            for text in texts:
                label = _label(preset, span, duration, jitter if split == preset.roles["train"]
                               else 0.0, rng)
                video.queries.append(PlannedQuery(target, text, span, label))
        if not video.queries:
            continue
        video.queries = video.queries[:count - total]
        video.queries.sort(key=lambda q: q.label)
        total += len(video.queries)
        videos.append(video)
    return videos


# -- writing ---------------------------------------------------------------------------------
def _write_annotations(preset: Preset, out: Path, split: str, videos: list[PlannedVideo]) -> None:
    from momentloc.data.converters import write_activitynet, write_charades_sta, write_tacos

    records = [MomentRecord(f"{split}:{i}", v.video_id, v.duration, q.text, q.label, (), split)
               for i, (v, q) in enumerate((v, q) for v in videos for q in v.queries)]
    files = split_files(preset, split)
    if preset.format == "charades_sta":
        write_charades_sta(records, out / files.annotations, out / files.durations)
    elif preset.format == "activitynet":
        write_activitynet(records, out / files.annotations)
    else:
        write_tacos(records, out / files.annotations, fps=preset.tacos_fps)


def _events_line(preset: Preset, video: PlannedVideo, first_query: int) -> str:
    d = preset.domain
    pairs = d.event_types()
    events = [{"action": d.actions[pairs[e.event_type][0]].name,
               "object": d.objects[pairs[e.event_type][1]].name, "start": e.start, "end": e.end}
              for e in video.events]
    queries = [{"index": first_query + i, "kind": q.target.kind,
                "mentions": list(q.target.mentions), "ordinal": q.target.ordinal,
                "span": list(q.span), "label": list(q.label), "query": q.text}
               for i, q in enumerate(video.queries)]
    return json.dumps({"video_id": video.video_id, "split": video.split,
                       "duration": video.duration, "scene": video.scene,
                       "num_clips": video.num_clips, "events": events, "queries": queries}) + "\n"


def _card(preset: Preset, size: str, seed: int, dim: int, jitter: float, glove: str) -> DatasetCard:
    f = preset.features
    notes = (f"Synthetic benchmark written by 'momentloc synth' (generator version "
             f"{GENERATOR_VERSION}): preset {preset.name}, size {size}, seed {seed}. It imitates "
             f"{preset.benchmark} (format, splits, durations, moment lengths) with the "
             f"'{preset.domain.name}' world: {len(preset.domain.actions)} actions, "
             f"{len(preset.domain.objects)} objects and {len(preset.domain.event_types())} "
             f"event types. Features: {dim}-d, one every {f.clip_stride_frames / f.fps:g} s, "
             f"{f.imitates}-style stand-ins from a random non-linear map of the latent world.")
    if dim != f.dims["full"]:
        notes += (f" The real features are {f.dims['full']}-d; size {size} uses {dim}-d to keep "
                  f"files small.")
    notes += (f" Training labels jittered (boundary std {jitter:g} x moment length); other splits "
              f"exact. Ground truth per video: {EVENTS_NAME}.")
    if preset.roles.get("val") is None:
        notes += f" Like {preset.benchmark}, there is no validation split."
    return DatasetCard(
        name=f"synth-{preset.name}-{size}", format=preset.format,
        splits={s: split_files(preset, s) for s in preset.splits}, roles=dict(preset.roles),
        features=FeatureSpec(store="hdf5", path=f.filename, dim=dim, dataset_key=f.dataset_key,
                             extractor=f"synthetic {preset.name} world",
                             layer=f"random 2-layer tanh MLP ({f.imitates}-style stand-in)",
                             clip_frames=f.clip_frames, clip_stride_frames=f.clip_stride_frames,
                             fps=f.fps, normalization="none"),
        word_vectors=glove,
        metrics=CardMetrics(recall_at=(1, 5), iou_thresholds=preset.iou_thresholds),
        notes=notes)


def synthesize(preset: str, size: str, seed: int, out_dir: str | os.PathLike, *,
               overwrite: bool = False, label_jitter: float | None = None) -> SynthSummary:
    """Generate a synthetic benchmark; see :func:`momentloc.synth.generate`."""
    if preset == "shapes":  # the rendered video world (momentloc.video.shapes, docs/video.md)
        from momentloc.video.shapes import synthesize_shapes
        return synthesize_shapes(size, seed, out_dir, overwrite=overwrite, label_jitter=label_jitter)
    p = get_preset(preset, size)
    jitter = p.label_jitter if label_jitter is None else float(label_jitter)
    if not 0.0 <= jitter < 1.0:
        raise ConfigError(f"label_jitter must be in [0, 1), got {jitter}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: directory is not empty (pass overwrite=True / --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dim = p.features.dims[size]
    world = World(p.domain, p.visual, p.num_scenes, dim, seed)
    new_id = _video_id_maker(p, np.random.default_rng(np.random.SeedSequence([seed, 401])))
    plans: dict[str, list[PlannedVideo]] = {}
    for split, count in zip(p.splits, p.sizes[size]):
        first = sum(len(v) for v in plans.values())
        plans[split] = plan_split(p, world, split, count, first, jitter, seed, new_id)
    for split, videos in plans.items():
        _write_annotations(p, out, split, videos)
    from momentloc.data.features import write_hdf5_store

    all_videos = [v for videos in plans.values() for v in videos]

    def features(chunk_clips: int = 50_000):
        """Render in chunks of about ``chunk_clips`` clips (bounded memory, batched MLP)."""
        start = 0
        while start < len(all_videos):
            stop, clips = start, 0
            while stop < len(all_videos) and (stop == start or clips < chunk_clips):
                clips += all_videos[stop].num_clips
                stop += 1
            chunk = all_videos[start:stop]
            rngs = [np.random.default_rng(np.random.SeedSequence([seed, 202, v.index])) for v in chunk]
            feats = world.render_many(
                ((v.events, v.duration, v.scene, v.num_clips) for v in chunk), rngs.__getitem__)
            yield from zip((v.video_id for v in chunk), feats)
            start = stop

    from momentloc.engine.runtime import progress

    write_hdf5_store(out / p.features.filename,
                     progress(features(), total=len(all_videos), unit="video",
                              desc=f"synth {preset} {size}: features"),
                     dataset_key=p.features.dataset_key)
    glove = f"synthetic_glove.{p.word_dim}d.txt"
    write_glove(out / glove, word_vectors(p.domain, p.style, p.word_dim, seed))
    lines, offset = [], {s: 0 for s in plans}
    for v in all_videos:
        lines.append(_events_line(p, v, offset[v.split]))
        offset[v.split] += len(v.queries)
    atomic_write_text(out / EVENTS_NAME, "".join(lines))
    card_path = out / CARD_NAME
    save_card(_card(p, size, seed, dim, jitter, glove), card_path)
    files = [f for s in p.splits for f in (split_files(p, s).annotations, split_files(p, s).durations)
             if f] + [p.features.filename, glove, EVENTS_NAME, CARD_NAME]
    seconds = time.perf_counter() - t0
    summary = SynthSummary(card_path, tuple(files),
                           {s: sum(len(v.queries) for v in vs) for s, vs in plans.items()},
                           {s: len(vs) for s, vs in plans.items()}, dim, seconds)
    log.info("synthetic %s/%s (seed %d): %s in %.1f s", preset, size, seed, summary.queries, seconds)
    return summary
