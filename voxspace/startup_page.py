"""While the base model loads at start-up (ZeroGPU), the Space's port answers with a page that says so.

    with loading_page(settings.base_model):   # voxspace/ui/app.py, before launch()
        gpu.load_base_at_startup(settings.base_model)

On ZeroGPU the base model must be loaded before gradio's launch(), because `spaces` packs the
weights for the GPU calls when launch() starts: the real page cannot be served during the load. A
standard-library HTTP server holds the port meanwhile. Every request gets 503 (Service Unavailable)
with Retry-After and a page that names the model, says how long the load has taken so far and
refreshes itself; the server is closed just before launch() binds the same port. 503 rather than
200: anything that waits for the app to be up (a health check, the tests' harness) keeps waiting
for the real page, while a person's browser shows the body.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)
REFRESH_S = 10  # the page reloads itself; the real page answers at the first reload after the load


def gradio_address() -> tuple[str, int]:
    """Where gradio's launch() will serve: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, gradio's defaults."""
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    return host, int(os.environ.get("GRADIO_SERVER_PORT", "7860"))


def render(model: str, elapsed_s: float) -> str:
    """The loading page: what is happening, for how long so far, and that it refreshes itself."""
    minutes, seconds = divmod(int(elapsed_s), 60)
    so_far = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>VoxSpace is starting</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
line-height:1.5}}</style>
</head><body><h1>VoxSpace is starting</h1>
<p role="status" aria-live="polite">Loading the speech model <code>{html.escape(model)}</code> onto this
Space: {so_far} so far. It is loaded once per start (a few minutes the first time, while its weights
download); your recordings and runs are not affected.</p>
<p>This page reloads itself every {REFRESH_S} seconds and becomes VoxSpace as soon as the model is ready.</p>
</body></html>
"""


def _handler(model: str, started: float) -> type[BaseHTTPRequestHandler]:
    class LoadingHandler(BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            body = render(model, time.monotonic() - started).encode()
            self.send_response(503)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Retry-After", str(REFRESH_S))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("loading page: " + format, *args)

    return LoadingHandler


@contextlib.contextmanager
def loading_page(model: str, address: tuple[str, int] | None = None) -> Iterator[bool]:
    """Serve the loading page at `address` (gradio's) for the duration of the block.

    Yields whether it is served: if the port is taken, the load goes on without a page (launch()
    reports the port itself afterwards) rather than failing the Space's start over a courtesy.
    """
    host, port = address or gradio_address()
    try:
        server = ThreadingHTTPServer((host, port), _handler(model, time.monotonic()))
    except OSError as e:
        log.warning("no loading page on %s:%d (%s); loading the base model without one", host, port, e)
        yield False
        return
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="voxspace-loading-page", daemon=True)
    thread.start()
    log.info("serving the loading page on %s:%d while the base model loads", host, port)
    try:
        yield True
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
