"""The painter's HTTP server: Python's standard `ThreadingHTTPServer`, a page and a JSON API.

    GET  /                      the page (static/index.html)
    GET  /static/<file>         the page's script and style (a fixed list of files)
    GET  /api/info              model, classes (id, name, colour), size, don't-care id, encoding
    GET  /api/example?variant=N a built-in example label map for this model
    POST /api/synthesize        {label, noise: {seeds, map} | seed} -> {image (PNG data URL), seeds, ms}
    POST /api/decode-label      {file: base64 PNG} -> {label, notes, classes_present}
    POST /api/label-png         {label} -> image/png (index PNG of model ids)
    POST /api/invert            {image, label (base64 files), steps?} -> {job, steps} (photos.py)
    GET  /api/invert?job=ID     {state: running|done|error, step, steps, loss, seconds, photo?, error?}

Every error is a JSON object `{"error": message}` with a 4xx/5xx status; no input can stop the
server. Bodies are capped (413 beyond), must carry Content-Length, and a slow client times out.
When bound to a loopback address the Host header must name a loopback host too, so that a web
page elsewhere cannot reach the API through DNS rebinding.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from functools import partialmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .core import MAX_UPLOAD_BYTES, Painter, RequestError

# Over-limit bodies up to this size are read and dropped before the 413 (a browser that is still
# sending cannot read an answer: it reports a network error); larger ones are refused unread.
DRAIN_LIMIT = 256 * 2**20

log = logging.getLogger("oasisgan.app")

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _static(name: str) -> bytes:
    return resources.files("oasisgan.app").joinpath("static", name).read_bytes()


class PainterHandler(BaseHTTPRequestHandler):
    server_version = "oasis-painter"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may take to send its request
    painter: Painter  # set on the subclass made by make_server
    quiet = False

    # answer even malformed request lines with a status line and headers (not HTTP/0.9's bare body)
    default_request_version = "HTTP/1.0"

    # --- plumbing --------------------------------------------------------------------------------
    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Protocol-level errors (bad request line, header too long...) as JSON like every other."""
        self.close_connection = True
        try:
            self._error(code, message or explain or "bad request")
        except OSError:
            pass

    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def _send(self, status: int, body: bytes, ctype: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        if not self.server.loopback_only:  # type: ignore[attr-defined]
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            host = host.split("]")[0] + "]"
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return host in LOOPBACK_HOSTS

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError("chunked bodies are not accepted; send Content-Length", 411)
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("a Content-Length header is required", 411)
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise RequestError("invalid Content-Length") from None
        if n < 0:
            self.close_connection = True
            raise RequestError("invalid Content-Length")
        if n > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            if n <= DRAIN_LIMIT:
                self._discard(n)  # a browser reads no answer while it is still sending
            raise RequestError(f"the request is {n / 2**20:.1f} MiB; the limit is "
                               f"{limit / 2**20:.1f} MiB", 413)
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise RequestError("the request body ended early")
        return data

    def _discard(self, n: int) -> None:
        """Read and drop an over-limit body, so that the client gets the 413 instead of a reset."""
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 20))
            if not chunk:
                return
            n -= len(chunk)

    def _read_json(self, limit: int) -> Any:
        data = self._read_body(limit)
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as e:  # bad UTF-8, bad JSON, ints over Python's digit limit
            raise RequestError(f"the request body is not valid JSON: {str(e)[:120]}") from None

    def _dispatch(self, method: str) -> None:
        try:
            if not self._host_ok():
                raise RequestError("unexpected Host header: open the painter at its 127.0.0.1 "
                                   "or localhost address", 403)
            url = urlsplit(self.path)
            route = self.server.routes.get((method, url.path))  # type: ignore[attr-defined]
            if route is None:
                if method == "GET" and url.path.startswith("/static/"):
                    return self._get_static(url.path[len("/static/"):])
                known = any(p == url.path for (_, p) in self.server.routes)  # type: ignore[attr-defined]
                raise RequestError(f"{method} {url.path[:80]} is not supported" if known
                                   else f"no such page: {url.path[:80]}", 405 if known else 404)
            route(self, url)
        except RequestError as e:
            self._safe_error(e.status, str(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug: report it, keep serving
            log.error("error handling %s %s:\n%s", method, self.path[:200], traceback.format_exc())
            self._safe_error(500, f"internal error: {type(e).__name__}: {str(e)[:200]}")

    def _safe_error(self, status: int, message: str) -> None:
        try:
            self._error(status, message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # HEAD is GET without the body (see `_send`); unrouted methods get a JSON 405 from `_dispatch`
    do_GET = do_HEAD = partialmethod(_dispatch, "GET")
    do_POST = partialmethod(_dispatch, "POST")
    do_PUT = partialmethod(_dispatch, "PUT")
    do_DELETE = partialmethod(_dispatch, "DELETE")
    do_PATCH = partialmethod(_dispatch, "PATCH")
    do_OPTIONS = partialmethod(_dispatch, "OPTIONS")

    # --- routes ----------------------------------------------------------------------------------
    def _get_static(self, name: str) -> None:
        if name not in STATIC_FILES:
            raise RequestError(f"no such file: {name[:80]}", 404)
        self._send(200, _static(name), STATIC_FILES[name])

    def get_index(self, url) -> None:
        self._get_static("index.html")

    def get_info(self, url) -> None:
        self._json(200, self.painter.info())

    def get_example(self, url) -> None:
        q = parse_qs(url.query)
        raw = (q.get("variant") or ["0"])[0]
        try:
            variant = int(raw)
        except ValueError:
            raise RequestError("'variant' must be an integer") from None
        if not 0 <= variant < 2**31:
            raise RequestError("'variant' must lie in 0..2^31-1")
        lab = self.painter.example(variant)
        self._json(200, {"label": self.painter.encode_map(lab), "variant": variant})

    def post_synthesize(self, url) -> None:
        body = self._read_json(self.server.map_body_limit)  # type: ignore[attr-defined]
        self._json(200, self.painter.synthesize(body))

    def post_decode_label(self, url) -> None:
        body = self._read_json(MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024)
        self._json(200, self.painter.decode_upload(body))

    def post_invert(self, url) -> None:
        body = self._read_json(2 * (MAX_UPLOAD_BYTES * 4 // 3) + 64 * 1024)
        self._json(200, self.painter.photos.start(body))

    def get_invert(self, url) -> None:
        job = (parse_qs(url.query).get("job") or [""])[0]
        self._json(200, self.painter.photos.status(job))

    def post_label_png(self, url) -> None:
        body = self._read_json(self.server.map_body_limit)  # type: ignore[attr-defined]
        png = self.painter.label_png(self.painter.parse_label(body))
        self._send(200, png, "image/png",
                   {"Content-Disposition": 'attachment; filename="label.png"'})


ROUTES = {
    ("GET", "/"): PainterHandler.get_index,
    ("GET", "/index.html"): PainterHandler.get_index,
    ("GET", "/api/info"): PainterHandler.get_info,
    ("GET", "/api/example"): PainterHandler.get_example,
    ("POST", "/api/synthesize"): PainterHandler.post_synthesize,
    ("POST", "/api/decode-label"): PainterHandler.post_decode_label,
    ("POST", "/api/label-png"): PainterHandler.post_label_png,
    ("POST", "/api/invert"): PainterHandler.post_invert,
    ("GET", "/api/invert"): PainterHandler.get_invert,
}


class PainterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: Tuple[str, int], painter: Painter, quiet: bool = False):
        handler = type("BoundPainterHandler", (PainterHandler,), {"painter": painter, "quiet": quiet})
        self.painter = painter
        self.routes = ROUTES
        self.loopback_only = address[0] in LOOPBACK_HOSTS or address[0].startswith("127.")
        # two maps of H*W 16-bit values, base64-encoded, plus room for the JSON around them
        self.map_body_limit = 2 * (painter.height * painter.width * 2 * 4 // 3 + 4) + 64 * 1024
        if ":" in address[0]:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def handle_error(self, request, client_address) -> None:  # keep serving, log briefly
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        log.error("connection error from %s: %s", client_address, exc)


def make_server(painter: Painter, host: str = "127.0.0.1", port: int = 7860,
                quiet: bool = False) -> PainterServer:
    return PainterServer((host, port), painter, quiet=quiet)


def serve_in_thread(painter: Painter, host: str = "127.0.0.1", port: int = 0,
                    quiet: bool = True) -> Tuple[PainterServer, threading.Thread]:
    """Start a server on a background thread (tests, notebooks); stop it with `server.shutdown()`."""
    server = make_server(painter, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, name="oasis-painter", daemon=True)
    thread.start()
    return server, thread
