"""A small web page over a trained run (``momentloc serve``): pick a video, type a sentence,
see ranked moments on a timeline, click one to play it. See :mod:`momentloc.serve.server`."""

from momentloc.serve.server import (MomentService, Unsatisfiable, make_server, parse_range,
                                    safe_video_path)

__all__ = ["MomentService", "Unsatisfiable", "make_server", "parse_range", "safe_video_path"]
