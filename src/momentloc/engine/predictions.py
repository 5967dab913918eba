"""The predictions JSONL that every evaluation goes through.

One line per query (fields in order)::

    {"query_id": "q1", "video_id": "v1", "query": "person opens the door", "duration": 30.0,
     "gt_span": [2.0, 8.5], "annotator_spans": [],
     "pred_spans": [[2.1, 8.0, 0.93], [10.0, 14.0, 0.41]],
     "pred_spans_by_iou": {"0.5": [[2.1, 8.0, 0.93], ...], "0.7": [...]},
     "ranked_spans": [[2.1, 8.0, 0.93], ...]}

- ``pred_spans``: ``[start, end, score]`` in seconds, best first, at most ``eval.top_k``,
  after temporal NMS at ``eval.nms_thresh`` (common spec 6); with ``eval.protocol: tan2d``
  the 2D-TAN release's decoding and NMS (metrics/protocol_tan2d.py), scored by its rules.
- ``cmin`` (only with ``eval.protocol: cmin``): ``{"num_frames": n, "gt_frames": [s, e],
  "picks": {"0.5": [[s, e, score], ...], ...}}``, the CMIN-lineage evaluation on the model's
  step grid (metrics/protocol_cmin.py): integer boxes (inclusive) picked by its NMS at
  ``m - 0.05`` for each IoU threshold m, and the ground truth on the same grid (the steps
  covering it, or with a model's ``target_grid: raw_frames`` the CSMGAN release's frames from
  the raw feature count: :func:`cmin_frame_rule`); R@n is scored from these (mIoU and dR
  from ``pred_spans``).
- ``pred_spans_by_iou`` (only with ``eval.nms_mode: per_metric``): for each IoU threshold m,
  the list after NMS at ``m - 0.05``; R@n at m is computed from it (the CMIN/CSMGAN
  protocol). Keys are thresholds as in metric names ("0.5").
- ``ranked_spans`` (optional, for DiDeMo's protocol): every valid candidate by descending
  score, without NMS, so that annotator moments can be ranked as the official evaluation does.

Metrics read only these lines (:func:`metrics_from_lines`), so ``momentloc evaluate`` can
score a saved file exactly as training scored it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from momentloc.config.schema import EvalConfig
from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import ConfigError, DataError
from momentloc.metrics import protocol_cmin
from momentloc.metrics.didemo import didemo_metrics
from momentloc.metrics.protocol_tan2d import tan2d_decode, tan2d_metrics
from momentloc.metrics.retrieval import (DEFAULT_IOU_THRESHOLDS, DEFAULT_RECALL_AT,
                                         compute_metrics, recall_key, threshold_key)
from momentloc.spans import batched_nms, seconds_to_indices

if TYPE_CHECKING:  # the models package imports every family; not needed at run time
    from momentloc.models.base import Candidates

REQUIRED = ("query_id", "video_id", "duration", "gt_span", "pred_spans")


def per_metric_thresholds(eval_cfg: EvalConfig) -> tuple[float, ...]:
    """IoU thresholds that get their own NMS with ``nms_mode: per_metric``: the config's
    thresholds together with the union the papers report (common spec 5.4)."""
    return tuple(sorted({*DEFAULT_IOU_THRESHOLDS, *(eval_cfg.iou_thresholds or ())}))


def _gather_rows(spans: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor,
                 kept: torch.Tensor) -> list[list[list[float]]]:
    """``(B, K, 2)`` spans, ``(B, K)`` scores, ``(B, k)`` indices and mask -> per-row
    ``[[s, e, score], ...]`` lists of the kept entries."""
    picked = torch.cat([torch.gather(spans, 1, keep[..., None].expand(-1, -1, 2)),
                        torch.gather(scores, 1, keep)[..., None]], dim=-1)      # (B, k, 3)
    rows = picked.tolist()
    mask = kept.tolist()
    return [[x for x, m in zip(r, mk) if m] for r, mk in zip(rows, mask)]


def cmin_frame_rule(model) -> str:
    """How ``eval.protocol: cmin`` places a query's ground truth on the frame grid for
    ``model``: ``raw_frames`` when its config selects ``target_grid: raw_frames`` (the CSMGAN
    release's labels from the raw feature count, as its training targets), else ``frames``
    (the steps covering the seconds); see :func:`protocol_cmin.ground_truth_frames`."""
    core = model.module if hasattr(model, "module") else model
    grid = getattr(getattr(core, "cfg", None), "target_grid", None)
    return "raw_frames" if grid == "raw_frames" else "frames"


def _cmin_fields(cands: "Candidates", meta: Sequence[dict], spans: torch.Tensor,
                 durations: torch.Tensor, lengths, eval_cfg: EvalConfig,
                 frame_rule: str) -> list[dict]:
    """Per query, the ``cmin`` field of a prediction line (see the module docstring)."""
    if cands.steps is None or lengths is None:
        raise ConfigError("eval.protocol cmin scores candidates on the model's step grid: the "
                          "model must return Candidates.steps (the anchor models CSMGAN and FIAN "
                          "do) and the evaluation must pass the video lengths")
    n = torch.as_tensor(lengths).detach().to("cpu", torch.float64).reshape(-1)
    spans = torch.as_tensor(spans).detach().to("cpu", torch.float64)
    durations = torch.as_tensor(durations).detach().to("cpu", torch.float64).reshape(-1)
    gt = protocol_cmin.ground_truth_frames(spans, durations, n, meta, frame_rule)
    gt = torch.stack([gt[:, 0], gt[:, 1] - 1], -1).numpy().astype(np.int64)
    scores = (cands.scores * cands.valid).detach().to("cpu", torch.float32).numpy()
    boxes = protocol_cmin.round_clip_boxes(
        cands.steps.detach().to("cpu", torch.float32).numpy(), n.numpy().astype(np.int64))
    ms = per_metric_thresholds(eval_cfg)
    picks = {}
    for m, thresh in zip(ms, protocol_cmin.nms_thresholds(ms)):
        pk, _ = protocol_cmin.nms(scores, boxes, thresh, eval_cfg.top_k)
        safe = np.maximum(pk, 0)
        chosen = np.take_along_axis(boxes, safe[..., None], 1).tolist()
        sc = np.take_along_axis(scores, safe, 1).tolist()
        picks[threshold_key(m)] = [[[*b, s] for b, s, p in zip(rb, rs, rp) if p >= 0]
                                   for rb, rs, rp in zip(chosen, sc, pk.tolist())]
    return [{"num_frames": int(n[b]), "gt_frames": gt[b].tolist(),
             "picks": {k: rows[b] for k, rows in picks.items()}} for b in range(len(gt))]


def decode_candidates(spans: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor,
                      eval_cfg: EvalConfig, top_k: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The moments a query reports, best first: ``keep (B, k)`` indices into the candidates and
    ``kept (B, k)`` bool: a prediction line's ``pred_spans`` and what ``Predictor.localize``
    (``momentloc predict``) reports. ``eval.protocol: tan2d`` decodes as the 2D-TAN release
    (metrics/protocol_tan2d.py); otherwise NMS at ``eval.nms_thresh`` (common spec 6), also
    for ``cmin``, whose recall is scored from its own per-threshold picks on the frame grid
    (the ``cmin`` field) while its single ranked list, mIoU and dR come from this decoding.

    Args:
        spans: ``(B, K, 2)``. scores: ``(B, K)``. valid: ``(B, K)`` bool.
        top_k: moments per query (default ``eval.top_k``).
    """
    k = eval_cfg.top_k if top_k is None else int(top_k)
    if eval_cfg.protocol == "tan2d":
        _, keep, kept = tan2d_decode(spans.detach().cpu().double().numpy(),
                                     scores.detach().cpu().double().numpy(),
                                     valid.detach().cpu().numpy(), eval_cfg.nms_thresh, k)
        return torch.from_numpy(keep), torch.from_numpy(kept)
    return batched_nms(spans, scores, eval_cfg.nms_thresh, k, valid)


def candidates_to_lines(cands: "Candidates", meta: list[dict], spans, durations,
                        eval_cfg: EvalConfig, full_ranking: bool = False,
                        lengths=None, frame_rule: str = "frames") -> list[dict]:
    """NMS'd prediction lines for a batch (one NMS call per setting, vectorized over B).

    Args:
        cands: ``Candidates`` with ``spans`` ``(B, K, 2)`` seconds, ``scores`` ``(B, K)``,
            ``valid`` ``(B, K)``.
        meta: ``B`` dicts with ``query_id``, ``video_id``, ``query``, ``annotator_spans``.
        spans: ``(B, 2)`` ground truth in seconds. durations: ``(B,)`` seconds.
        eval_cfg: ``top_k``, ``nms_thresh``, ``nms_mode`` (and ``iou_thresholds`` for
            ``per_metric``, see :func:`per_metric_thresholds`).
        full_ranking: also store ``ranked_spans`` (all valid candidates by score, no NMS);
            pass True for DiDeMo's protocol.
        lengths: ``(B,)`` real steps per video (``eval.protocol: cmin`` needs them).
        frame_rule: how ``eval.protocol: cmin`` places the ground truth on the frame grid,
            ``frames`` or ``raw_frames`` (from ``meta``'s ``num_features`` and ``span_rows``;
            :func:`cmin_frame_rule` gives a model's).
    Returns:
        ``B`` dicts in the predictions-file layout (see the module docstring).
    """
    c_spans = cands.spans.detach().to("cpu", torch.float64)
    c_scores = cands.scores.detach().to("cpu", torch.float64)
    c_valid = cands.valid.detach().to("cpu", torch.bool)
    bsz = c_spans.shape[0]
    if len(meta) != bsz or c_scores.shape != c_spans.shape[:2] or c_valid.shape != c_scores.shape:
        raise ValueError(f"inconsistent batch: spans {tuple(c_spans.shape)}, scores "
                         f"{tuple(c_scores.shape)}, valid {tuple(c_valid.shape)}, {len(meta)} meta")
    gt = torch.as_tensor(spans).detach().to("cpu", torch.float64).tolist()
    dur = torch.as_tensor(durations).detach().to("cpu", torch.float64).reshape(-1).tolist()

    def nms_rows(thresh: float) -> list[list[list[float]]]:
        keep, kept = batched_nms(c_spans, c_scores, thresh, eval_cfg.top_k, c_valid)
        return _gather_rows(c_spans, c_scores, keep, kept)

    keep, kept = decode_candidates(c_spans, c_scores, c_valid, eval_cfg)
    main = _gather_rows(c_spans, c_scores.masked_fill(~c_valid, 0.0), keep, kept)
    by_iou = {}
    if eval_cfg.nms_mode == "per_metric":
        by_iou = {threshold_key(m): nms_rows(m - 0.05) for m in per_metric_thresholds(eval_cfg)}
    ranked = None
    if full_ranking:
        order = torch.sort(c_scores.masked_fill(~c_valid, float("-inf")), dim=1, descending=True,
                           stable=True).indices
        ranked = _gather_rows(c_spans, c_scores, order, torch.gather(c_valid, 1, order))
    cmin = (_cmin_fields(cands, meta, spans, durations, lengths, eval_cfg, frame_rule)
            if eval_cfg.protocol == "cmin" else None)

    lines = []
    for b, m in enumerate(meta):
        line = {"query_id": str(m["query_id"]), "video_id": str(m["video_id"]),
                "query": m.get("query", ""), "duration": dur[b], "gt_span": gt[b],
                "annotator_spans": [list(map(float, s)) for s in m.get("annotator_spans", [])],
                "pred_spans": main[b]}
        if by_iou:
            line["pred_spans_by_iou"] = {k: rows[b] for k, rows in by_iou.items()}
        if ranked is not None:
            line["ranked_spans"] = ranked[b]
        if cmin is not None:
            line["cmin"] = cmin[b]
        lines.append(line)
    return lines


def records_to_lines(records: Sequence[MomentRecord], pred_spans, pred_scores,
                     pred_valid=None) -> list[dict]:
    """Prediction lines for already ranked predictions (baselines; no NMS).

    Args:
        records: ``Q`` records. pred_spans: ``(Q, K, 2)`` seconds. pred_scores: ``(Q, K)``.
        pred_valid: ``(Q, K)`` bool (None: all valid).
    """
    spans = np.asarray(pred_spans, dtype=np.float64)
    scores = np.asarray(pred_scores, dtype=np.float64)
    valid = np.ones(scores.shape, bool) if pred_valid is None else np.asarray(pred_valid, bool)
    if spans.shape[:2] != scores.shape or valid.shape != scores.shape or len(records) != len(spans):
        raise ValueError(f"inconsistent predictions: spans {spans.shape}, scores {scores.shape}, "
                         f"valid {valid.shape}, {len(records)} records")
    triples = np.concatenate([spans, scores[..., None]], axis=-1).tolist()
    return [{"query_id": r.query_id, "video_id": r.video_id, "query": r.query,
             "duration": r.duration, "gt_span": list(r.span),
             "annotator_spans": [list(s) for s in r.annotator_spans],
             "pred_spans": [t for t, v in zip(row, vrow) if v]}
            for r, row, vrow in zip(records, triples, valid.tolist())]


def write_predictions(path: str | os.PathLike, lines: Sequence[dict]) -> None:
    """Write prediction lines as JSONL (atomically)."""
    atomic_write_text(path, "".join(json.dumps(line) + "\n" for line in lines))


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def _span_list(value, width: int, what: str) -> None:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    for i, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == width and all(map(_number, item))):
            raise ValueError(f"{what}[{i}] must be {width} finite numbers, got {item!r}")
        if item[0] > item[1]:
            raise ValueError(f"{what}[{i}] has start > end: {item!r}")


def validate_line(line) -> None:
    """Raise ValueError when ``line`` is not a prediction line."""
    if not isinstance(line, dict):
        raise ValueError("a prediction line is a JSON object")
    missing = [k for k in REQUIRED if k not in line]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if not (_number(line["duration"]) and line["duration"] > 0):
        raise ValueError(f"duration must be a positive number, got {line['duration']!r}")
    _span_list([line["gt_span"]], 2, "gt_span")
    _span_list(line.get("annotator_spans", []), 2, "annotator_spans")
    _span_list(line["pred_spans"], 3, "pred_spans")
    if "ranked_spans" in line:
        _span_list(line["ranked_spans"], 3, "ranked_spans")
    by_iou = line.get("pred_spans_by_iou")
    if by_iou is not None:
        if not isinstance(by_iou, dict):
            raise ValueError("pred_spans_by_iou must map IoU thresholds to lists")
        for key, value in by_iou.items():
            _span_list(value, 3, f"pred_spans_by_iou[{key!r}]")


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """Read and check a predictions JSONL.

    Raises:
        DataError: naming the file and line of malformed JSON, a missing field, a bad span,
            or a repeated ``query_id``.
    """
    lines = []
    seen: dict[str, int] = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read predictions ({e.strerror})", path=str(path)) from e
    with f:
        for i, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                validate_line(line)
            except ValueError as e:
                raise DataError(f"not a prediction line ({e})", path=str(path), line=i) from e
            qid = str(line["query_id"])
            if qid in seen:
                raise DataError(f"query_id {qid!r} repeats line {seen[qid]}", path=str(path),
                                line=i)
            seen[qid] = i
            lines.append(line)
    return lines


def _pad(lists: Sequence[list]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ``[[s, e, (score)], ...]`` lists -> ``(Q, K, 2)`` spans and ``(Q, K)`` valid."""
    lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    k = int(lens.max(initial=0))
    flat = np.array([item[:2] for items in lists for item in items], dtype=np.float64)
    rows = np.repeat(np.arange(len(lists)), lens)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    out = np.zeros((len(lists), k, 2))
    valid = np.zeros((len(lists), k), dtype=bool)
    out[rows, cols] = flat.reshape(-1, 2)
    valid[rows, cols] = True
    return out, valid


def _cmin_metrics(lines: Sequence[dict], recall_at: Sequence[int],
                  thresholds: Sequence[float]) -> dict:
    """R@n IoU=m from the lines' ``cmin`` fields, by the CMIN-lineage rules."""
    out = {}
    try:
        gt = np.array([line["cmin"]["gt_frames"] for line in lines], dtype=np.int64)
        for m in thresholds:
            key = threshold_key(m)
            boxes, valid = _pad([line["cmin"]["picks"][key] for line in lines])
            hit = protocol_cmin.frame_boxes_recall(boxes, valid, gt, float(m), recall_at)
            rec = protocol_cmin.recall_from_hits(hit)
            out.update({recall_key(n, m): float(r) for n, r in zip(recall_at, rec)})
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"eval.protocol cmin: a prediction line's cmin field is incomplete or "
                        f"malformed ({type(e).__name__}: {e}); rerun the predictions") from None
    return out


def metrics_from_lines(lines: Sequence[dict], eval_cfg: EvalConfig,
                       recall_at: Sequence[int] | None = None,
                       iou_thresholds: Sequence[float] | None = None,
                       protocol: str = "standard", num_clips: int | None = None) -> dict:
    """Metrics of prediction lines (fractions; see :func:`momentloc.metrics.compute_metrics`).

    R@n at IoU m uses ``pred_spans_by_iou[m]`` when the lines have it (per-metric NMS), else
    ``pred_spans``; mIoU always uses the top-1 of ``pred_spans`` (NMS keeps the top-1). With
    ``protocol="didemo"`` the DiDeMo protocol is added under ``didemo/R1``, ``didemo/R5``,
    ``didemo/mIoU``, ranking ``ranked_spans`` when present (else ``pred_spans``) against the
    ``annotator_spans`` (else the ground truth).

    Args:
        lines: prediction lines (from :func:`candidates_to_lines` or :func:`read_predictions`).
        eval_cfg: ``iou_mode``, ``iou_cmp``, ``discount`` (and defaults for the next two).
        recall_at / iou_thresholds: default to ``eval_cfg``'s, then the union the papers use.
        protocol: ``standard`` or ``didemo``.
        num_clips: with ``iou_mode: inclusive_index``, the clip grid the spans are rounded to
            (common spec 5.1); dR is then measured on that grid too.
    Raises:
        DataError: no lines, or per-IoU lists that lack a requested threshold.
        ConfigError: ``inclusive_index`` without ``num_clips``, or an unknown protocol.
    """
    if not lines:
        raise DataError("no prediction lines to score")
    if protocol not in ("standard", "didemo"):
        raise ConfigError(f"unknown evaluation protocol {protocol!r} (standard, didemo)")
    recall_at = tuple(recall_at or eval_cfg.recall_at or DEFAULT_RECALL_AT)
    thresholds = tuple(iou_thresholds or eval_cfg.iou_thresholds or DEFAULT_IOU_THRESHOLDS)
    gt = np.array([line["gt_span"] for line in lines], dtype=np.float64)         # (Q, 2)
    dur = np.array([line["duration"] for line in lines], dtype=np.float64)       # (Q,)

    def to_unit(pred: np.ndarray, ground: np.ndarray):
        if eval_cfg.iou_mode != "inclusive_index":
            return pred, ground, dur
        if not num_clips:
            raise ConfigError("eval.iou_mode inclusive_index needs the number of clips (num_clips)")
        return (seconds_to_indices(pred, dur[:, None], num_clips).astype(np.float64),
                seconds_to_indices(ground, dur, num_clips).astype(np.float64),
                np.full(len(dur), float(num_clips)))

    def score(pred_lists, ms: tuple[float, ...]) -> dict:
        pred, valid = _pad(pred_lists)
        pred_u, gt_u, dur_u = to_unit(pred, gt)
        return compute_metrics(pred_u, valid, gt_u, recall_at, ms, eval_cfg.iou_mode,
                               eval_cfg.iou_cmp, dur_u, eval_cfg.discount)

    if eval_cfg.protocol == "tan2d":
        pred, valid = _pad([line["pred_spans"] for line in lines])
        out = tan2d_metrics(pred, valid, gt, recall_at, thresholds)
    else:
        out = score([line["pred_spans"] for line in lines], thresholds)
    if any("pred_spans_by_iou" in line for line in lines):
        for m in thresholds:
            key = threshold_key(m)
            try:
                lists = [line["pred_spans_by_iou"][key] for line in lines]
            except KeyError:
                raise DataError(f"per-metric predictions lack IoU {key} (a line has no "
                                f"pred_spans_by_iou[{key!r}])") from None
            per = score(lists, (m,))
            out.update({k: v for k, v in per.items() if k != "mIoU"})
    if eval_cfg.protocol == "cmin" and any("cmin" in line for line in lines):
        out.update(_cmin_metrics(lines, recall_at, thresholds))
    if protocol == "didemo":
        ranked, valid = _pad([line.get("ranked_spans", line["pred_spans"]) for line in lines])
        ann, ann_valid = _pad([line.get("annotator_spans") or [line["gt_span"]] for line in lines])
        dm = didemo_metrics(ranked, valid, ann, ann_valid, dur, recall_at)
        out.update({f"didemo/{k}": v for k, v in dm.items()})
    return out
