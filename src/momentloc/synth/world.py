"""The visual side of a synthetic world: latent prototypes and the observation map.

A clip's latent ``z(t)`` (``latent_dim``) is the sum of

- the video's scene: a scene prototype shared by the videos of that scene, a per-video offset
  and a slow drift (a few random sinusoids with periods of tens of seconds);
- inside an event of action ``a`` on object ``o``: ``(1 - p) B_a + p E_a + O_o + u`` where
  ``p`` is the event's progress in [0, 1], ``B_a`` / ``E_a`` the action's begin / end
  prototypes (so boundaries and direction are visible), ``O_o`` the object's prototype and
  ``u`` a per-occurrence variation; a reversed action (close vs open) swaps its partner's
  ``B`` and ``E`` plus a smaller own part;
- outside events, an idle prototype; event onsets and offsets blend over ``ramp_s`` seconds;
- per-instant motion noise.

Features average the latent over a few instants inside each clip and pass it through a fixed
random 2-layer tanh MLP to ``feature_dim`` dimensions, then add observation noise. The noise
and the non-linearity make a linear probe on one clip a weak detector (see docs/synthetic.md);
pooling over clips helps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from momentloc.synth.concepts import Domain


@dataclass(frozen=True)
class VisualParams:
    """Sizes and noise levels of the visual latent (std per latent dimension unless noted).

    Attributes:
        latent_dim / hidden_dim: widths of the latent and of the MLP's hidden layer.
        gain: std of the MLP's first-layer pre-activations (higher saturates tanh more).
        concept: amplitude of the action and object prototypes.
        reverse_own: share of a reversed action's prototypes that is its own (not swapped).
        scene / video_offset / drift: scene prototype, per-video offset and drift amplitudes.
        instance: per-occurrence variation of an event. motion: per-instant latent noise.
        observation: feature-space noise added after the MLP (output std is about 1).
        ramp_s: seconds over which an event fades in and out.
        subsamples: latent instants averaged per clip.
    """

    latent_dim: int = 64
    hidden_dim: int = 256
    gain: float = 1.5
    concept: float = 0.8
    reverse_own: float = 0.5
    scene: float = 1.0
    video_offset: float = 0.4
    drift: float = 0.4
    instance: float = 0.3
    motion: float = 1.75
    observation: float = 0.8
    ramp_s: float = 1.0
    subsamples: int = 4


@dataclass(frozen=True)
class EventTiming:
    """One event of a video: its event-type index and its span in seconds."""

    event_type: int
    start: float
    end: float


class World:
    """Concepts, prototypes and the observation map of one synthetic world.

    Args:
        domain: actions, objects and valid event types.
        params: latent sizes and noise levels.
        num_scenes: scene prototypes shared across videos.
        feature_dim: output feature dimension ``D``.
        seed: the generator seed; the world depends only on it, the domain, the params and
            ``feature_dim`` (the MLP's output layer).
    """

    def __init__(self, domain: Domain, params: VisualParams, num_scenes: int, feature_dim: int,
                 seed: int):
        self.domain = domain
        self.params = params
        self.feature_dim = feature_dim
        self.event_types = np.array(domain.event_types(), dtype=np.int64)     # (E, 2)
        p, L = params, params.latent_dim
        rng = np.random.default_rng(np.random.SeedSequence([seed, 101]))
        unit = lambda n: rng.standard_normal((n, L))
        num_actions = len(domain.actions)
        self.begin, self.end = unit(num_actions) * p.concept, unit(num_actions) * p.concept
        names = {a.name: i for i, a in enumerate(domain.actions)}
        own = p.reverse_own
        for i, a in enumerate(domain.actions):
            if a.reverse is not None:  # the partner's direction, swapped, plus an own part
                j = names[a.reverse]
                keep = np.sqrt(1.0 - own**2)
                self.begin[i] = keep * self.end[j] + own * self.begin[i]
                self.end[i] = keep * self.begin[j] + own * self.end[i]
        self.objects = unit(len(domain.objects)) * p.concept
        self.idle = unit(1)[0]
        self.scenes = unit(num_scenes) * p.scene
        # Observation MLP: the latent sum has about 3 units of variance per dimension.
        self.w1 = rng.standard_normal((L, p.hidden_dim)) * (p.gain / np.sqrt(3.0 * L))
        self.b1 = rng.standard_normal(p.hidden_dim) * 0.3
        out_rng = np.random.default_rng(np.random.SeedSequence([seed, 102, feature_dim]))
        self.w2 = out_rng.standard_normal((p.hidden_dim, feature_dim)) / np.sqrt(p.hidden_dim * 0.4)

    @property
    def num_event_types(self) -> int:
        return len(self.event_types)

    def latent(self, events: list[EventTiming], duration: float, scene: int, num_clips: int,
               rng: np.random.Generator) -> np.ndarray:
        """Latent of one video's clips (before the observation map).

        Args:
            events: the video's events (non-overlapping, in time order).
            duration: seconds; clip ``i`` covers ``[i, i+1) * duration / num_clips``.
            scene: scene index. num_clips: feature count ``M``.
            rng: the video's own generator (so videos render independently of order).
        Returns:
            ``(M, latent_dim)`` float64.
        """
        p, L, K = self.params, self.params.latent_dim, self.params.subsamples
        width = duration / num_clips
        # (M, K) instants spread inside each clip
        t = (np.arange(num_clips)[:, None] + (np.arange(K)[None, :] + 0.5) / K) * width
        t = t.reshape(-1)                                                     # (M*K,)
        # Scene: prototype + per-video offset + slow drift (sum of 3 sinusoids).
        periods = rng.uniform(20.0, 120.0, size=3)
        phases = rng.uniform(0.0, 2 * np.pi, size=3)
        amps = rng.standard_normal((3, L)) * (p.drift / np.sqrt(1.5))
        drift = np.sin(2 * np.pi * t[:, None] / periods[None, :] + phases) @ amps  # (M*K, L)
        z = self.scenes[scene] + rng.standard_normal(L) * p.video_offset + drift
        if events:
            types = np.array([e.event_type for e in events])
            starts = np.array([e.start for e in events])
            ends = np.array([e.end for e in events])
            act, obj = self.event_types[types, 0], self.event_types[types, 1]
            # weight (M*K, n): 1 inside, fading linearly over ramp_s around each boundary
            dist = np.minimum(t[:, None] - starts, ends - t[:, None])
            weight = np.clip(0.5 + dist / p.ramp_s, 0.0, 1.0)
            progress = np.clip((t[:, None] - starts) / (ends - starts), 0.0, 1.0)[..., None]
            instance = rng.standard_normal((len(events), L)) * p.instance
            content = ((1 - progress) * self.begin[act] + progress * self.end[act]
                       + self.objects[obj] + instance)                       # (M*K, n, L)
            z = z + np.einsum("tn,tnl->tl", weight, content)
            idle = np.clip(1.0 - weight.sum(axis=1), 0.0, 1.0)
        else:
            idle = np.ones_like(t)
        z = z + idle[:, None] * self.idle + rng.standard_normal((len(t), L)) * p.motion
        return z.reshape(num_clips, K, L).mean(axis=1)                          # (M, L)

    def observe(self, latents: np.ndarray) -> np.ndarray:
        """The noiseless observation map ``tanh(z W1 + b1) W2``: ``(N, L)`` -> ``(N, D)``.

        Computed in float64 over many clips at once (one large product is much faster than
        many small ones, and float64 keeps the float32 output stable across BLAS builds).
        """
        return np.tanh(latents @ self.w1 + self.b1) @ self.w2

    def render_many(self, videos, rng_of) -> list[np.ndarray]:
        """Features of several videos: ``videos`` yields ``(events, duration, scene,
        num_clips)``, ``rng_of(i)`` gives video ``i``'s generator. Returns ``(M_i, D)``
        float32 arrays."""
        rngs, latents = [], []
        for i, (events, duration, scene, num_clips) in enumerate(videos):
            rngs.append(rng_of(i))
            latents.append(self.latent(events, duration, scene, num_clips, rngs[-1]))
        clean = self.observe(np.concatenate(latents))
        bounds = np.cumsum([0] + [len(z) for z in latents])
        sigma = np.float32(self.params.observation)
        return [clean[a:b].astype(np.float32)
                + rng.standard_normal((b - a, self.feature_dim), dtype=np.float32) * sigma
                for rng, a, b in zip(rngs, bounds[:-1], bounds[1:])]
