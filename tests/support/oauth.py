"""Running a gradio app with gradio's real OAuth against the local Hub (tests/support/hub_server.py).

gradio uses its real "Sign in with Hugging Face" routes only inside a Space (SYSTEM=spaces and
SPACE_ID) and reads OAUTH_* / OPENID_PROVIDER_URL at import, so start the app in a subprocess with
`space_oauth_env(hub)` merged into its environment. Choose who signs in:
- a browser: `context.add_cookies([{"name": "hub_user", "value": "bob", "url": hub.url}])`, then
  click "Sign in with Hugging Face" (checked in Chromium on 127.0.0.1: two contexts, two users);
- plain HTTP: `sign_in(app_url, hub.url, "bob")` returns gradio's session `oauth_info`.
The visitor's access token is issued by the local Hub and acts as that user (whoami type "oauth").
"""

from __future__ import annotations

import base64
import json

import httpx

DEFAULT_SCOPES = "openid profile write-repos"


def space_oauth_env(
    hub, *, space_id: str = "spaceowner/voxspace", scopes: str = DEFAULT_SCOPES
) -> dict[str, str]:
    """The variables the Spaces platform sets for an `hf_oauth: true` Space, pointing at `hub`."""
    return {
        "SYSTEM": "spaces",
        "SPACE_ID": space_id,
        "OAUTH_CLIENT_ID": hub.oauth_client_id,
        "OAUTH_CLIENT_SECRET": hub.oauth_client_secret,
        "OAUTH_SCOPES": scopes,
        "OPENID_PROVIDER_URL": hub.url,
    }


def sign_in(app_url: str, hub_url: str, user: str) -> dict:
    """Follow /login/huggingface -> the Hub's authorize (as `user`) -> /login/callback by hand and
    return the `oauth_info` gradio stored in its session (its cookie is `Secure`, which an http
    client's cookie jar would not send back over http)."""
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
    if r.status_code != 200:
        raise AssertionError(f"sign-in stopped at {url} with HTTP {r.status_code}")
    session = jar[httpx.URL(app_url).netloc.decode()]["session"]
    return json.loads(base64.b64decode(session.split(".")[0] + "==="))["oauth_info"]
