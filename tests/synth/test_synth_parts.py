"""Pieces of the generator: target enumeration, quantization, the world, sentences, probe."""

from __future__ import annotations

import numpy as np
import pytest

from momentloc.synth import PRESETS
from momentloc.synth.concepts import DOMAINS, _action
from momentloc.synth.generate import quantize_duration, quantize_span
from momentloc.synth.language import STYLES, QuerySpec, Renderer
from momentloc.synth.probe import coverage, pool_clips
from momentloc.synth.videos import (
    Target,
    enumerate_targets,
    related_types,
    sample_event_types,
    sample_timing,
)
from momentloc.synth.world import EventTiming, VisualParams, World

A, B, C, D = 10, 11, 12, 13


def test_targets_of_a_hand_made_video():
    # A B A C: A twice (ordinal), B and C once; "A then B" has one reading, "A then C" two;
    # "after B, A" picks the second A because the first A comes before B.
    got = enumerate_targets([A, B, A, C])
    assert got == [
        Target("single", (1,), 1, 1), Target("single", (3,), 3, 3),
        Target("sequence", (0, 1), 0, 1), Target("sequence", (1, 2), 1, 2),
        Target("ordinal", (0,), 0, 0, 1), Target("ordinal", (2,), 2, 2, 2),
        Target("context", (1, 2), 2, 2),
    ]


@pytest.mark.parametrize("types, kinds", [
    ([A, B, C], {"single": 3, "sequence": 2}),
    ([A, A, B], {"single": 1, "ordinal": 2}),             # "A then B" has two readings
    ([B, A, C, A], {"single": 2, "sequence": 2, "ordinal": 2, "context": 1}),  # "B then A" two
                                                          # readings; "after C, A" one
    ([A, B, C, A], {"single": 2, "sequence": 3, "ordinal": 2, "context": 1}),
])
def test_target_kinds(types, kinds):
    got = {}
    for t in enumerate_targets(types):
        got[t.kind] = got.get(t.kind, 0) + 1
    assert got == kinds


@pytest.mark.parametrize("preset, span, duration, expected", [
    ("charades", (1.26, 7.94), 30.0, (1.3, 7.9)),
    ("charades", (25.0, 29.97), 29.97, (25.0, 29.9)),            # end never passes the duration
    ("charades", (3.02, 3.04), 30.0, (2.9, 3.0)),                 # keeps a positive length
    ("activitynet", (1.234, 100.0), 120.5, (1.23, 100.0)),
])
def test_quantize_span(preset, span, duration, expected):
    assert quantize_span(PRESETS[preset], *span, duration) == pytest.approx(expected)


def test_tacos_times_are_whole_frames():
    p = PRESETS["tacos"]
    duration = quantize_duration(p, 301.234)
    frames = duration * p.tacos_fps
    assert frames == pytest.approx(round(frames))
    s, e = quantize_span(p, 10.0, 20.0, duration)
    assert s * p.tacos_fps == pytest.approx(294) and e * p.tacos_fps == pytest.approx(588)


def test_verb_needs_four_forms():
    with pytest.raises(ValueError, match="base/third/gerund/past"):
        _action("jump", "jump/jumps/jumping")


def _world(dim=16):
    return World(DOMAINS["household"], VisualParams(), num_scenes=3, feature_dim=dim, seed=0)


def test_render_shapes_and_determinism():
    world = _world()
    events = [EventTiming(0, 2.0, 8.0), EventTiming(5, 10.0, 14.0)]

    def render(seed):
        rng = lambda i: np.random.default_rng(seed + i)
        return world.render_many([(events, 20.0, 1, 20), ([], 5.0, 0, 3)], rng)

    a, b = render(0), render(0)
    assert [x.shape for x in a] == [(20, 16), (3, 16)] and a[0].dtype == np.float32
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], render(1)[0])


def test_events_are_visible_in_the_latent():
    """Without noise the latent inside an event moves from the begin to the end prototype."""
    quiet = VisualParams(motion=0.0, drift=0.0, video_offset=0.0, instance=0.0, ramp_s=0.01)
    world = World(DOMAINS["household"], quiet, num_scenes=1, feature_dim=8, seed=0)
    t = 5  # event type 5: (action, object) = world.event_types[5]
    act, obj = world.event_types[t]
    z = world.latent([EventTiming(t, 10.0, 20.0)], 30.0, 0, 30, np.random.default_rng(0))
    base = world.scenes[0]
    assert np.allclose(z[2], base + world.idle)                     # before the event
    early = world.begin[act] + world.objects[obj] + base
    late = world.end[act] + world.objects[obj] + base
    assert np.linalg.norm(z[10] - early) < np.linalg.norm(z[10] - late)
    assert np.linalg.norm(z[19] - late) < np.linalg.norm(z[19] - early)


def test_reversed_actions_swap_prototypes():
    world = _world()
    names = [a.name for a in world.domain.actions]
    o, c = names.index("open"), names.index("close")
    corr = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    assert corr(world.begin[c], world.end[o]) > 0.6 and corr(world.end[c], world.begin[o]) > 0.6
    assert abs(corr(world.begin[c], world.begin[o])) < 0.5


def test_event_types_repeat_at_most_twice_and_share_concepts():
    world = _world()
    related = related_types(world)
    mix = PRESETS["charades"].mix
    rng = np.random.default_rng(0)
    shared = 0
    for _ in range(200):
        types = sample_event_types(world, related, 5, mix, rng)
        assert max(types.count(t) for t in types) <= 2
        shared += any(related[a, b] for a in types for b in types)
    assert shared > 150  # hard negatives are common


def test_timing_stays_in_range():
    timing = PRESETS["activitynet"].timing
    rng = np.random.default_rng(0)
    for n in (3, 6):
        for _ in range(50):
            starts, ends, duration = sample_timing(n, timing, rng)
            assert timing.duration_range[0] - 0.01 <= duration <= timing.duration_range[1] + 0.01
            assert (starts < ends).all() and (ends[:-1] <= starts[1:]).all()
            assert 0 <= starts[0] and ends[-1] <= duration


@pytest.mark.parametrize("name", sorted(STYLES))
def test_every_kind_renders_in_every_style(name):
    style = STYLES[name]
    domain = PRESETS[name].domain
    r = Renderer(domain, style)
    rng = np.random.default_rng(0)
    pair, other = (0, 0), (1, 1)
    specs = [QuerySpec("single", (pair,)), QuerySpec("sequence", (pair, other)),
             QuerySpec("ordinal", (pair,), 1), QuerySpec("ordinal", (pair,), 2),
             QuerySpec("context", (other, pair))]
    for spec in specs:
        for _ in range(5):
            text = r.render(spec, rng)
            assert text == text.strip() and "  " not in text and "{" not in text
            if style.capitalize:
                assert text[0].isupper()
            nouns = domain.objects[0].nouns
            assert any(n in text for n in nouns), text


def test_pool_clips_golden():
    feats = np.arange(8, dtype=np.float64).reshape(4, 2)          # rows [0,1] [2,3] [4,5] [6,7]
    assert np.allclose(pool_clips(feats, 2), [[1, 2], [5, 6]])
    assert np.allclose(pool_clips(feats[:2], 4), [[0, 1], [0, 1], [2, 3], [2, 3]])  # repeats


def test_coverage_golden():
    cov = coverage(np.array([[1.0, 2.5]]), np.array([4.0]), 4)    # clips of 1 s
    assert np.allclose(cov, [[0.0, 1.0, 0.5, 0.0]])
