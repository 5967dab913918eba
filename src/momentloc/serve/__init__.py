"""A small web page over a trained run (``momentloc serve``): pick or upload a video, type a
sentence, see ranked moments on a time axis, click one to play it. See
:mod:`momentloc.serve.server` (HTTP, limits) and :mod:`momentloc.serve.service` (what is served)."""

from momentloc.serve.server import MomentServer, Unsatisfiable, make_server, parse_range
from momentloc.serve.service import MomentService, safe_video_path

__all__ = ["MomentServer", "MomentService", "Unsatisfiable", "make_server", "parse_range",
           "safe_video_path"]
