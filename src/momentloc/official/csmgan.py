"""The CSMGAN release's parameter names -> momentloc's ``csmgan`` model.

The release's ``Model`` (``models_/gcn_final.py``) maps onto :class:`~momentloc.models.csmgan.CSMGAN`
built from a ``release_*`` preset (one graph layer):

==============================================  ==============================================
official                                        momentloc
==============================================  ==============================================
``video_encoder.tran`` (TACoS only)             ``video_in``
``video_encoder.attn_layers.<i>.in_proj_*``     ``video_encoder.attn.<i>.{q,k,v}_proj`` (rows
                                                split in three, q first)
``video_encoder.attn_layers.<i>.out_proj``      ``video_encoder.attn.<i>.out_proj``
``video_encoder.rnn.gru``                       ``video_encoder.rnn.rnn``
``sentence_encoder.{uni,bi,tri}gram_conv``      ``query_encoder.convs.{0,1,2}``
``sentence_encoder.bilstm``                     ``query_encoder.sentence.rnn``
``sentence_encoder.concat.gru``                 ``query_encoder.fuse.rnn``
``atten.q_proj``                                ``graph.0.w_v``
``update_v`` / ``update_s``                     ``graph.0.cells.cmg_video`` / ``cmg_query``
``update_v_intra`` / ``update_s_intra``         ``graph.0.cells.smg_video`` / ``smg_query``
``  .update_gate`` + ``.reset_gate``            ``  .gates`` (z rows, then r rows; kernel 1)
``  .out_gate``                                 ``  .candidate``
``v2s.ws1`` / ``ws2`` / ``wst``                 ``integration.w1`` / ``w2`` / ``w``
``rnn.gru``                                     ``localizer_rnn.rnn``
``fc_score`` / ``fc_reg`` (Conv1d, kernel 1)    ``head.score`` / ``head.offset`` (Linear)
==============================================  ==============================================

What the shapes tell (:func:`infer_overrides`): the model width, the feature width, whether the
learned video input Linear exists (and its width), the self-attention layers and the sentence
LSTM's depth. The anchor widths and the head count have no shape of their own: they come from
the preset (``release_activitynet``: 7 anchors, ``release_tacos``: 4), and a checkpoint whose
anchor count differs is refused.
"""

from __future__ import annotations

import re

import torch

from momentloc.config.schema import ExperimentConfig
from momentloc.errors import ConfigError

DEFAULT_PRESET = "release_activitynet"
# Anchor count of each release preset (utils.generate_anchors).
RELEASE_PRESETS = {7: "release_activitynet", 4: "release_tacos"}

_RNN = r"((?:weight|bias)_(?:ih|hh)_l\d+(?:_reverse)?)"
_PATTERNS = [
    (re.compile(rf"^video_encoder\.rnn\.gru\.{_RNN}$"), "video_encoder.rnn.rnn.{0}"),
    (re.compile(rf"^sentence_encoder\.bilstm\.{_RNN}$"), "query_encoder.sentence.rnn.{0}"),
    (re.compile(rf"^sentence_encoder\.concat\.gru\.{_RNN}$"), "query_encoder.fuse.rnn.{0}"),
    (re.compile(rf"^rnn\.gru\.{_RNN}$"), "localizer_rnn.rnn.{0}"),
    (re.compile(r"^video_encoder\.attn_layers\.(\d+)\.out_proj\.(weight|bias)$"),
     "video_encoder.attn.{0}.out_proj.{1}"),
]
_FIXED = {
    "video_encoder.tran": "video_in",
    "sentence_encoder.unigram_conv": "query_encoder.convs.0",
    "sentence_encoder.bigram_conv": "query_encoder.convs.1",
    "sentence_encoder.trigram_conv": "query_encoder.convs.2",
    "atten.q_proj": "graph.0.w_v",
    "v2s.ws1": "integration.w1",
    "v2s.ws2": "integration.w2",
    "v2s.wst": "integration.w",
}
_CELLS = {"update_v": "cmg_video", "update_s": "cmg_query",
          "update_v_intra": "smg_video", "update_s_intra": "smg_query"}
_IN_PROJ = re.compile(r"^video_encoder\.attn_layers\.(\d+)\.in_proj_(weight|bias)$")
_CELL = re.compile(r"^(update_[vs](?:_intra)?)\.(update_gate|reset_gate|out_gate)\.(weight|bias)$")
_HEAD = re.compile(r"^(fc_score|fc_reg)\.(weight|bias)$")


def _need(state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in state:
        raise ConfigError(f"not a CSMGAN release checkpoint: no tensor {name!r} "
                          f"(it has {', '.join(sorted(state)[:6])}, ...)")
    return state[name]


def infer_overrides(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """Config values implied by the official tensors' shapes.

    Raises:
        ConfigError: not a CSMGAN release state dict.
    """
    q_proj = _need(state, "atten.q_proj.weight")                               # (d, d)
    score = _need(state, "fc_score.weight")                                     # (A, d, 1)
    attn = sorted({int(m.group(1)) for k in state if (m := _IN_PROJ.match(k))})
    lstm = sorted({int(m.group(1)) for k in state
                   if (m := re.match(r"^sentence_encoder\.bilstm\.weight_ih_l(\d+)$", k))})
    if not lstm:
        raise ConfigError("not a CSMGAN release checkpoint: no sentence_encoder.bilstm weights")
    tran = state.get("video_encoder.tran.weight")                               # (F, 4096)
    if tran is not None:
        feature_dim = int(tran.shape[1])
    elif attn:
        feature_dim = int(state["video_encoder.attn_layers.0.in_proj_weight"].shape[1])
    else:
        feature_dim = int(_need(state, "video_encoder.rnn.gru.weight_ih_l0").shape[1])
    out: dict[str, object] = {
        "data.feature_dim": feature_dim,
        "model.hidden_dim": int(q_proj.shape[0]),
        "model.video_in_linear": int(tran.shape[0]) if tran is not None else 0,
        "model.video_sa_layers": len(attn),
        "model.sent_rnn_layers": len(lstm),
        "model.graph_layers": 1,
    }
    if int(score.shape[0]) not in RELEASE_PRESETS:
        raise ConfigError(f"fc_score.weight has {score.shape[0]} anchors; the release presets "
                          f"have {', '.join(map(str, RELEASE_PRESETS))}")
    return out


def _rename(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Official -> momentloc names and layouts; returns the tensors and momentloc -> official."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    cells: dict[tuple[str, str], dict[str, torch.Tensor]] = {}

    def put(new: str, tensor: torch.Tensor, name: str) -> None:
        out[new] = tensor.detach().to(torch.float32).clone()
        origin[new] = name

    for name, tensor in state.items():
        if (m := _IN_PROJ.match(name)):
            i, kind = m.groups()
            if tensor.shape[0] % 3:
                raise ConfigError(f"official tensor {name!r} has shape {list(tensor.shape)}: "
                                  f"its rows do not split into q, k, v")
            for part, chunk in zip("qkv", tensor.chunk(3, dim=0)):
                put(f"video_encoder.attn.{i}.{part}_proj.{kind}", chunk, name)
            continue
        if (m := _CELL.match(name)):
            cells.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = tensor
            continue
        if (m := _HEAD.match(name)):
            layer, kind = m.groups()
            t = tensor.squeeze(-1) if kind == "weight" else tensor
            put(f"head.{'score' if layer == 'fc_score' else 'offset'}.{kind}", t, name)
            continue
        new = None
        for pattern, template in _PATTERNS:
            if (m := pattern.match(name)):
                new = template.format(*m.groups())
                break
        if new is None:
            prefix, _, leaf = name.rpartition(".")
            if prefix in _FIXED:
                new = f"{_FIXED[prefix]}.{leaf}"
        if new is None:
            raise ConfigError(f"official tensor {name!r} {list(tensor.shape)} has no counterpart "
                              f"in momentloc's CSMGAN")
        put(new, tensor, name)
    for (cell, kind), parts in cells.items():
        missing = {"update_gate", "reset_gate", "out_gate"} - set(parts)
        if missing:
            raise ConfigError(f"official cell {cell!r} lacks {', '.join(sorted(missing))}.{kind}")
        prefix = f"graph.0.cells.{_CELLS[cell]}"
        gates = torch.cat([parts["update_gate"], parts["reset_gate"]], 0)
        cand = parts["out_gate"]
        if kind == "weight":
            gates, cand = gates[..., None], cand[..., None]
        put(f"{prefix}.gates.{kind}", gates, f"{cell}.update_gate/reset_gate.{kind}")
        put(f"{prefix}.candidate.{kind}", cand, f"{cell}.out_gate.{kind}")
    return out, origin


def convert(state: dict[str, torch.Tensor], cfg: ExperimentConfig) -> dict[str, torch.Tensor]:
    """The momentloc ``csmgan`` state dict of a CSMGAN release state dict.

    The shapes are checked against the model ``cfg`` builds (feature width ``data.pca_dim``
    or ``data.feature_dim``, else the checkpoint's; word width the checkpoint's unigram conv).

    Raises:
        ConfigError: a tensor whose shape differs from the config's model (naming the official
            tensor and both shapes), a tensor with no counterpart, or a missing one.
    """
    from momentloc.official import check_against_config

    if cfg.model_name != "csmgan":
        raise ConfigError(f"the CSMGAN converter builds model 'csmgan', the config is for "
                          f"{cfg.model_name!r}")
    weights, origin = _rename(state)
    words = _need(state, "sentence_encoder.unigram_conv.weight")               # (Dw, Dw, 1)
    check_against_config(weights, origin, cfg, int(infer_overrides(state)["data.feature_dim"]),
                         int(words.shape[1]))
    return weights
