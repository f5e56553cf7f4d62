"""The loading page a ZeroGPU Space serves on its port while the base model loads (voxspace/startup_page.py).

Real sockets on 127.0.0.1. That gradio's launch() then binds the same port and serves the real page
is run by tests/browser/test_train_zerogpu.py, which starts app.py in ZeroGPU mode and waits through
this page.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from voxspace import startup_page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answer(url: str, method: str = "GET") -> urllib.error.HTTPError:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5)
    return caught.value


def test_the_port_says_the_model_is_loading_until_the_load_ends_then_is_free_for_gradio():
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with startup_page.loading_page("org/Voxtral-<Mini>", ("127.0.0.1", port)) as served:
        assert served
        for path in ("", "?__theme=dark", "gradio_api/info"):  # any path a browser or client asks for
            answer = _answer(url + path)
            body = answer.read().decode()
            assert answer.code == 503 and answer.headers["Retry-After"] == str(startup_page.REFRESH_S)
            assert "Loading the speech model <code>org/Voxtral-&lt;Mini&gt;</code>" in body  # escaped
            assert f'http-equiv="refresh" content="{startup_page.REFRESH_S}"' in body
            assert 'role="status"' in body
        head = _answer(url, method="HEAD")
        assert head.code == 503 and head.read() == b""
    with pytest.raises(urllib.error.URLError):  # closed: nothing answers
        urllib.request.urlopen(url, timeout=2)
    with socket.socket() as successor:  # bound as uvicorn binds (SO_REUSEADDR), right after the load
        successor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        successor.bind(("127.0.0.1", port))
        successor.listen()


def test_the_page_counts_the_minutes_so_far():
    assert "42 s so far" in startup_page.render("m", 42.9)
    assert "3 min 5 s so far" in startup_page.render("m", 185)


def test_a_taken_port_leaves_the_load_to_go_on_without_a_page(caplog):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()
        ran = []
        with startup_page.loading_page("m", taken) as served:
            ran.append(served)
    assert ran == [False]
    assert "no loading page" in caplog.text


def test_a_failed_load_closes_the_page():
    port = _free_port()
    page = startup_page.loading_page("m", ("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="cannot fetch"), page:
        raise RuntimeError("cannot fetch the model")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
