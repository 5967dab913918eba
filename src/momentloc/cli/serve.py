"""``momentloc serve``: a web page to query a trained run on a directory of videos."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal

from momentloc.cli.common import example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="web page: pick a video, type a sentence, play the moments found",
        description="Serve a page where you pick a video of --videos (or upload one), type a "
                    "sentence and see the run's ranked moments on a time axis under the player's "
                    "seek bar; clicking one plays it. Features are extracted from each video with "
                    "the extractor the run's dataset card records. Uploads are kept in a private "
                    "temporary folder removed at exit. Listens on the loopback interface unless "
                    "--host says otherwise, and answers only requests addressed to that address "
                    "(no other site's page can reach it). JSON API: GET /api/info, "
                    "GET /api/videos, POST /api/query {video, query, top_k}, "
                    "POST /api/upload?name=FILE.",
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
    p.add_argument("--max-upload-mb", type=float, default=200, metavar="MB",
                   help="largest video the page may upload (default 200; 0 turns uploads off)")
    p.add_argument("--max-connections", type=int, default=32, metavar="N",
                   help="connections served at once; more are refused with 503 (default 32)")
    p.add_argument("--timeout", type=float, default=10, metavar="S",
                   help="seconds a client may take to send a request, and each write may "
                        "take (default 10)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name the page may be reached by (e.g. this machine's DNS name "
                        "with --host 0.0.0.0); repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.serve import MomentService, make_server

    log = logging.getLogger("momentloc.serve")
    service = MomentService(args.run_dir, args.videos, args.checkpoint, args.device, args.top_k,
                            max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
                            **({"model": args.model_dir} if args.model_dir else {}))
    server = make_server(service, args.host, args.port, max_connections=args.max_connections,
                         timeout=args.timeout, allowed_hosts=tuple(args.allow_host))
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        log.warning("listening on %s: anyone who can reach this address can query the run, "
                    "download the videos and upload files", args.host)
    host, port = server.server_address[:2]
    count = len(service.list_videos())
    print(f"momentloc serve: http://{host}:{port}/  ({count} videos; Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a plain kill also removes the uploads
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if not server.drain(args.timeout):
            log.warning("stopping with connections still open after %g s", args.timeout)
        service.close()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt
