"""``momentloc serve``: a web page to query a trained run on a directory of videos."""

from __future__ import annotations

import argparse
import ipaddress
import logging

from momentloc.cli.common import example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="web page: pick a video, type a sentence, play the moments found",
        description="Serve a page where you pick a video of --videos, type a sentence and see the "
                    "run's ranked moments on a timeline; clicking one plays it. Features are "
                    "extracted from each video with the extractor the run's dataset card records. "
                    "Listens on the loopback interface unless --host says otherwise. JSON API: "
                    "GET /api/videos, POST /api/query {video, query, top_k}.",
        epilog=example_epilog("momentloc serve runs/shapes --videos data/shapes/videos",
                              "momentloc serve runs/shapes --videos data/shapes/videos --port 0"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--videos", required=True, metavar="DIR",
                   help="directory of video files to serve")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="moments shown per query")
    p.add_argument("--checkpoint", default="best", help="best, last, or a .pt file")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model-dir", metavar="DIR",
                   help="where the CLIP checkpoint the run's features came from is now "
                        "(default: the path the run's card records)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.serve import MomentService, make_server

    log = logging.getLogger("momentloc.serve")
    service = MomentService(args.run_dir, args.videos, args.checkpoint, args.device, args.top_k,
                            **({"model": args.model_dir} if args.model_dir else {}))
    server = make_server(service, args.host, args.port)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        log.warning("listening on %s: anyone who can reach this address can query the run and "
                    "download the videos", args.host)
    host, port = server.server_address[:2]
    count = len(service.list_videos())
    print(f"momentloc serve: http://{host}:{port}/  ({count} videos; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
