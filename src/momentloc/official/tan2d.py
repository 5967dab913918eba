"""The 2D-TAN release's parameter names -> momentloc's ``tan2d`` model.

The release's ``TAN`` module (``frame_layer``, ``prop_layer``, ``fusion_layer``, ``map_layer``,
``pred_layer``) maps one to one onto :class:`~momentloc.models.tan2d.TAN2D`:

==========================================  ====================================
official                                    momentloc
==========================================  ====================================
``frame_layer.vis_conv``                    ``frame.proj``
``prop_layer.layers.<s>.<i>`` (conv)        ``moment_map.convs.<layers before s + i>``
``fusion_layer.textual_encoder``            ``sentence.rnn.rnn`` (LSTM, same gate order)
``fusion_layer.tex_linear``                 ``sentence.proj``
``fusion_layer.vis_conv``                   ``fusion.map_proj``
``map_layer.convs.<i>``                     ``map_conv.convs.<i>``
``pred_layer``                              ``predictor``
==========================================  ====================================

What the shapes tell (:func:`infer_overrides`): the feature width, C, the LSTM's width and
depth, K and L of the map convs, and ``pool`` or ``conv`` proposals (with the conv layers per
scale). The map size N and the pool layout have no parameters: they come from the preset.
"""

from __future__ import annotations

import re

import torch

from momentloc.config.schema import ExperimentConfig
from momentloc.errors import ConfigError

DEFAULT_PRESET = "charades"

# The release's experiment files and the presets that reproduce them.
RELEASE_PRESETS = {
    "2D-TAN-16x16-K5L8-pool": "charades",
    "2D-TAN-16x16-K5L8-conv": "charades_conv",
    "2D-TAN-64x64-K9L4-pool": "activitynet",
    "2D-TAN-64x64-K9L4-conv": "activitynet_conv",
    "2D-TAN-128x128-K5L8-pool": "tacos",
    "2D-TAN-128x128-K5L8-conv": "tacos_conv",
}
# The release clips the gradient norm at this constant (moment_localization/train.py).
RELEASE_GRAD_CLIP = 10.0
_PROPOSALS = {"SparsePropMaxPool": "pool", "SparsePropConv": "conv"}

_PROP = re.compile(r"^prop_layer\.layers\.(\d+)\.(\d+)\.(weight|bias)$")
_MAP = re.compile(r"^map_layer\.convs\.(\d+)\.(weight|bias)$")
_LSTM = re.compile(r"^fusion_layer\.textual_encoder\.((weight|bias)_(ih|hh)_l(\d+)(_reverse)?)$")
_FIXED = {
    "frame_layer.vis_conv": "frame.proj",
    "fusion_layer.tex_linear": "sentence.proj",
    "fusion_layer.vis_conv": "fusion.map_proj",
    "pred_layer": "predictor",
}


def _need(state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in state:
        raise ConfigError(f"not a 2D-TAN checkpoint: no tensor {name!r} "
                          f"(it has {', '.join(sorted(state)[:6])}, ...)")
    return state[name]


def _scale_layers(state: dict[str, torch.Tensor]) -> list[int]:
    """Conv proposal layers per scale, from the ``prop_layer.layers.<s>.<i>`` names."""
    counts: dict[int, int] = {}
    for name in state:
        m = _PROP.match(name)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            counts[s] = max(counts.get(s, 0), i + 1)
    if sorted(counts) != list(range(len(counts))):
        raise ConfigError(f"prop_layer scales {sorted(counts)} are not numbered 0, 1, ...")
    return [counts[s] for s in range(len(counts))]


def infer_overrides(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """Config values implied by the official tensors' shapes.

    Raises:
        ConfigError: not a 2D-TAN state dict, or a setting momentloc's model does not have
            (a bidirectional LSTM, map convs of different kernels or widths).
    """
    frame = _need(state, "frame_layer.vis_conv.weight")                  # (C, D, 1)
    lstm = _need(state, "fusion_layer.textual_encoder.weight_hh_l0")     # (4H, H)
    if any(k.endswith("_reverse") for k in state if k.startswith("fusion_layer.textual_encoder.")):
        raise ConfigError("fusion_layer.textual_encoder is bidirectional; momentloc's 2D-TAN "
                          "sentence LSTM is unidirectional as in the release's settings")
    layers = sorted({int(m.group(4)) for k in state if (m := _LSTM.match(k))})
    maps = sorted({int(m.group(1)) for k in state if (m := _MAP.match(k))})
    if not maps:
        raise ConfigError("not a 2D-TAN checkpoint: no map_layer.convs.<i>.weight")
    first = _need(state, "map_layer.convs.0.weight")                      # (C, C, K, K)
    for i in maps:
        w = state[f"map_layer.convs.{i}.weight"]
        if tuple(w.shape) != tuple(first.shape):
            raise ConfigError(f"map_layer.convs.{i}.weight has shape {list(w.shape)}, "
                              f"map_layer.convs.0.weight {list(first.shape)}: momentloc's map "
                              f"convs share one width and kernel")
    out: dict[str, object] = {
        "data.feature_dim": int(frame.shape[1]),
        "model.hidden_dim": int(frame.shape[0]),
        "model.lstm_hidden": int(lstm.shape[1]),
        "model.lstm_layers": len(layers),
        "model.kernel_size": int(first.shape[-1]),
        "model.num_layers": len(maps),
    }
    scales = _scale_layers(state)
    out["model.proposal"] = "conv" if scales else "pool"
    if scales:
        out["model.scale_layers"] = scales
    return out


def _rename(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Official -> momentloc names; returns the renamed tensors and momentloc -> official."""
    scales = _scale_layers(state)
    before = [sum(scales[:s]) for s in range(len(scales))]
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for name, tensor in state.items():
        new = None
        if (m := _PROP.match(name)):
            new = f"moment_map.convs.{before[int(m.group(1))] + int(m.group(2))}.{m.group(3)}"
        elif (m := _MAP.match(name)):
            new = f"map_conv.convs.{m.group(1)}.{m.group(2)}"
        elif (m := _LSTM.match(name)):
            new = f"sentence.rnn.rnn.{m.group(1)}"
        else:
            prefix, _, leaf = name.rpartition(".")
            if prefix in _FIXED:
                new = f"{_FIXED[prefix]}.{leaf}"
        if new is None:
            raise ConfigError(f"official tensor {name!r} {list(tensor.shape)} has no counterpart "
                              f"in momentloc's 2D-TAN")
        out[new] = tensor.detach().to(torch.float32).clone()
        origin[new] = name
    return out, origin


def convert(state: dict[str, torch.Tensor], cfg: ExperimentConfig) -> dict[str, torch.Tensor]:
    """The momentloc ``tan2d`` state dict of an official 2D-TAN state dict.

    The shapes are checked against the model ``cfg`` builds (feature width ``data.pca_dim``
    or ``data.feature_dim``, else the checkpoint's; word width the checkpoint's LSTM input).

    Raises:
        ConfigError: a tensor whose shape differs from the config's model (naming the official
            tensor and both shapes), or a tensor with no counterpart.
    """
    from momentloc.official import check_against_config

    if cfg.model_name != "tan2d":
        raise ConfigError(f"the 2D-TAN converter builds model 'tan2d', the config is for "
                          f"{cfg.model_name!r}")
    weights, origin = _rename(state)
    frame = _need(state, "frame_layer.vis_conv.weight")
    words = _need(state, "fusion_layer.textual_encoder.weight_ih_l0")
    check_against_config(weights, origin, cfg, int(frame.shape[1]), int(words.shape[1]))
    return weights


def release_preset(official_yaml: str) -> str:
    """The preset reproducing a release experiment file (``experiments/.../<name>.yaml``)."""
    stem = official_yaml.rsplit("/", 1)[-1].removesuffix(".yaml")
    if stem not in RELEASE_PRESETS:
        raise ConfigError(f"no preset reproduces {official_yaml!r}; known: "
                          f"{', '.join(RELEASE_PRESETS)}")
    return RELEASE_PRESETS[stem]


def _numbers(value, kind):
    return [kind(v) for v in str(value).split(",")] if isinstance(value, str) else [kind(value)]


def release_settings(config: dict) -> dict[str, object]:
    """The momentloc config values of a merged release config (``lib/core/config.py`` after
    ``update_config(<yaml>)``, as plain values): sizes, loss, solver, decoding and evaluation.

    Raises:
        ConfigError: a release option momentloc's 2D-TAN does not reproduce (dense or
            random-sampled inputs, a loss bias, map convs of mixed kernels, strides, dilations
            or paddings other than the release's).
    """
    ds, tan, loss = config["DATASET"], config["TAN"], config["LOSS"]
    frame, prop = tan["FRAME_MODULE"]["PARAMS"], tan["PROP_MODULE"]
    fusion, mp = tan["FUSION_MODULE"]["PARAMS"], tan["MAP_MODULE"]["PARAMS"]
    steps, stride = int(ds["NUM_SAMPLE_CLIPS"]), int(ds["TARGET_STRIDE"])
    kernels = list(mp["KERNEL_SIZES"])
    k, layers = int(kernels[0]), len(mp["HIDDEN_SIZES"])
    problems = []
    if prop["NAME"] not in _PROPOSALS:
        problems.append(f"TAN.PROP_MODULE.NAME {prop['NAME']}")
    if ds.get("RANDOM_SAMPLING") or not ds.get("NORMALIZE", True):
        problems.append("DATASET.RANDOM_SAMPLING / NORMALIZE other than False / True")
    if float(loss["PARAMS"].get("BIAS", 0.0)) != 0.0 or loss["NAME"] != "bce_rescale_loss":
        problems.append(f"LOSS {loss['NAME']} with BIAS {loss['PARAMS'].get('BIAS')}")
    if (set(kernels) != {k} or set(mp["STRIDES"]) != {1} or set(mp["DILATIONS"]) != {1}
            or list(mp["PADDINGS"]) != [layers * (k - 1) // 2] + [0] * (layers - 1)):
        problems.append("MapConv kernels/strides/dilations/paddings")
    if int(frame["KERNEL_SIZE"]) != stride or int(frame["STRIDE"]) != stride:
        problems.append("FrameAvgPool kernel/stride other than TARGET_STRIDE")
    if fusion["LSTM"].get("BIDIRECTIONAL"):
        problems.append("a bidirectional LSTM")
    if problems:
        raise ConfigError("release options momentloc's 2D-TAN does not reproduce: "
                          + "; ".join(problems))
    recalls = _numbers(config["TEST"]["RECALL"], int)
    return {
        "data.num_clips": steps,
        "data.resample": "tan2d",
        "data.l2_normalize": False,
        "data.oov": "zero",
        "data.feature_dim": int(frame["INPUT_SIZE"]),
        "model.num_clips": steps // stride,
        "model.proposal": _PROPOSALS[prop["NAME"]],
        "model.scale_layers": [int(n) for n in prop["PARAMS"]["NUM_SCALE_LAYERS"]],
        "model.hidden_dim": int(frame["HIDDEN_SIZE"]),
        "model.lstm_hidden": int(fusion["TXT_HIDDEN_SIZE"]),
        "model.lstm_layers": int(fusion["LSTM"]["NUM_LAYERS"]),
        "model.kernel_size": k,
        "model.num_layers": layers,
        "model.tmin": float(loss["PARAMS"]["MIN_IOU"]),
        "model.tmax": float(loss["PARAMS"]["MAX_IOU"]),
        "model.dropout": 0.0,
        "model.iou_float64": True,
        "optim.name": "adam",
        "optim.lr": float(config["TRAIN"]["LR"]),
        "optim.weight_decay": float(config["TRAIN"]["WEIGHT_DECAY"]),
        "train.batch_size": int(config["TRAIN"]["BATCH_SIZE"]),
        "train.epochs": int(config["TRAIN"]["MAX_EPOCH"]),
        "train.grad_clip": RELEASE_GRAD_CLIP,
        "eval.protocol": "tan2d",
        "eval.nms_thresh": float(config["TEST"]["NMS_THRESH"]),
        "eval.iou_thresholds": _numbers(config["TEST"]["TIOU"], float),
        "eval.recall_at": recalls,
        "eval.top_k": max(recalls),
    }
