"""gradio's real "Sign in with Hugging Face" flow signs in against the local Hub's OpenID provider.

gradio only uses its real OAuth routes inside a Space (SYSTEM=spaces + SPACE_ID) and reads the
OAUTH_* variables at import, so the app runs in a subprocess with the Space's environment. See
tests/support/oauth.py for driving the same flow from a browser.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from tests.support.oauth import sign_in, space_oauth_env

ROOT = Path(__file__).resolve().parents[1]
APP = """
import gradio as gr
with gr.Blocks() as demo:
    gr.LoginButton()
demo.launch(server_name="127.0.0.1", server_port=int(__import__("sys").argv[1]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def space_app(hub):
    port = _free_port()
    env = {**os.environ, **space_oauth_env(hub)}
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"the gradio app died: {proc.stderr.read()[-2000:]}")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def test_gradio_signs_in_as_the_chosen_user_with_a_working_token(hub, space_app):
    info = sign_in(space_app, hub.url, "bob")
    assert info["userinfo"]["preferred_username"] == "bob"  # authlib verified the signed id_token
    assert "write-repos" in info["scope"]
    api = HfApi(endpoint=hub.url, token=info["access_token"])
    who = api.whoami()
    assert who["name"] == "bob" and who["auth"]["type"] == "oauth"
    api.create_repo("bob/made-with-oauth", repo_type="dataset", private=True)
    assert hub.writes_by("bob/made-with-oauth") == {"bob"}
    assert sign_in(space_app, hub.url, "alice")["userinfo"]["preferred_username"] == "alice"


def test_authorize_refuses_unknown_clients_and_users(hub):
    base = {"response_type": "code", "redirect_uri": "http://127.0.0.1:1/cb", "state": "s"}
    r = httpx.get(f"{hub.url}/oauth/authorize", params={**base, "client_id": "someone-else", "user": "bob"})
    assert r.status_code == 400
    r = httpx.get(
        f"{hub.url}/oauth/authorize", params={**base, "client_id": hub.oauth_client_id, "user": "eve"}
    )
    assert r.status_code == 400
    r = httpx.post(
        f"{hub.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": "nope",
            "client_id": hub.oauth_client_id,
            "client_secret": hub.oauth_client_secret,
        },
    )
    assert r.status_code == 400
