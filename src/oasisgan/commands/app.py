"""`oasis app`: the painter web app (draw label maps, watch OASIS synthesise them)."""
from __future__ import annotations

import argparse

from .common import CHECKPOINT_HELP, number


def register(sub) -> None:
    p = sub.add_parser(
        "app", help="serve the painter: draw a label map in the browser, get an OASIS image",
        description="Serves a web page where you paint a label map with the model's classes and "
                    "see the synthesised image update after each stroke; resample the whole image, "
                    "one class or a region. Uses only the standard library's HTTP server; the page "
                    "loads nothing from the internet.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT_OR_NAME", help=CHECKPOINT_HELP)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                        "painter to your network)")
    p.add_argument("--port", type=number(int, 0, 65535), default=7860,
                   help="port (default 7860; 0 picks a free one)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="do not log every request")
    p.set_defaults(func=run)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return name


def run(args: argparse.Namespace) -> int:
    import errno
    import time

    from ..loading.pretrained import from_pretrained
    from ..app import Painter, make_server
    from ..errors import OASISError

    if not 0 <= args.port <= 65535:
        raise OASISError(f"--port must lie in 0..65535, got {args.port}")
    device = resolve_device(args.device)
    try:
        import torch

        torch.device(device)
    except RuntimeError as e:
        raise OASISError(f"--device {args.device}: {e}") from None
    model = from_pretrained(args.checkpoint, device=device, discriminator=False)
    painter = Painter(model)
    t0 = time.perf_counter()
    painter.synthesize_array(painter.example(0), [0])  # warm-up; fails early on a broken model
    warm = time.perf_counter() - t0
    try:
        server = make_server(painter, args.host, args.port, quiet=args.quiet)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OASISError(f"port {args.port} on {args.host} is in use: choose another with --port") from None
        raise OASISError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    cfg = model.config
    print(f"oasis painter: {cfg.preset} model, {cfg.semantic_nc} classes, {cfg.height}x{cfg.width}, "
          f"on {device} (first image took {warm:.2f} s)")
    if not server.loopback_only:
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the painter")
    print(f"open {server.url}  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
