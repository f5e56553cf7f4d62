"""gradio's real "Sign in with Hugging Face" flow signs in against the local Hub's OpenID provider.

gradio only uses its real OAuth routes inside a Space (SYSTEM=spaces + SPACE_ID) and reads the
OAUTH_* variables at import, so the app runs in a subprocess with the Space's environment. The flow
is followed by hand (its session cookie is `Secure`, which an http client jar would not send back).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

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


def sign_in(app_url: str, hub_url: str, user: str) -> dict:
    """Follow /login/huggingface -> hub authorize (as `user`) -> callback; return gradio's oauth_info."""
    jar: dict[str, dict[str, str]] = {}
    hub_host = httpx.URL(hub_url).netloc.decode()
    url = f"{app_url}/login/huggingface"
    for _ in range(8):
        host = httpx.URL(url).netloc.decode()
        cookies = {**jar.get(host, {}), **({"hub_user": user} if host == hub_host else {})}
        r = httpx.get(url, headers={"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
        for header in r.headers.get_list("set-cookie"):
            name, value = header.split(";")[0].split("=", 1)
            jar.setdefault(host, {})[name] = value
        if not r.is_redirect:
            break
        url = str(httpx.URL(url).join(r.headers["location"]))
    assert r.status_code == 200, (r.status_code, url)
    session = jar[httpx.URL(app_url).netloc.decode()]["session"]
    return json.loads(base64.b64decode(session.split(".")[0] + "==="))["oauth_info"]


@pytest.fixture
def space_app(hub):
    port = _free_port()
    env = {
        **os.environ,
        "SYSTEM": "spaces",
        "SPACE_ID": "spaceowner/voxspace",
        "OAUTH_CLIENT_ID": hub.oauth_client_id,
        "OAUTH_CLIENT_SECRET": hub.oauth_client_secret,
        "OAUTH_SCOPES": "openid profile write-repos",
        "OPENID_PROVIDER_URL": hub.url,
    }
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
