"""The painter: draw a label map in the browser and watch OASIS turn it into an image.

`oasis app --checkpoint FILE` serves it; in Python::

    import oasisgan
    from oasisgan.app import Painter, serve_in_thread
    server, _ = serve_in_thread(Painter(oasisgan.load("model.ckpt")), port=7860)
    print(server.url)

Only the Python standard library and the package's own dependencies are used: the page is
plain HTML/JS/CSS in `static/`, served by `http.server`, and fetches nothing from the internet.
"""
from .core import Painter, RequestError, example_label
from .server import PainterServer, make_server, serve_in_thread

__all__ = ["Painter", "PainterServer", "RequestError", "example_label", "make_server",
           "serve_in_thread"]
