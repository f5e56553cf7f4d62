"""The test world: a local Hub-API server and an environment that can never reach the real Hub.

The environment is set at import time, before any test module imports huggingface_hub (which reads
HF_ENDPOINT once, at import): the port of the local Hub is chosen here, HF_HOME and the datasets
cache live in .pytest-env/ inside the checkout, and no token is inherited from the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = ROOT / ".pytest-env"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_PORT = _free_port()
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
# Distinctive, per-session tokens: the token-leak test greps every log and file for them.
TOKENS = {name: f"hf_test{name}{secrets.token_hex(12)}" for name in ("alice", "bob", "spaceowner")}
USERS = {token: name for name, token in TOKENS.items()}


def _set_test_environment() -> None:
    shutil.rmtree(ENV_DIR, ignore_errors=True)
    ENV_DIR.mkdir()
    for var in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "SPACE_ID",
        "SPACE_HOST",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "OAUTH_SCOPES",
        "OPENID_PROVIDER_URL",
        "HF_TOKEN_PATH",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "VOXSPACE_DATA_DIR",
    ):
        os.environ.pop(var, None)
    os.environ.update(
        {
            "HF_ENDPOINT": HUB_URL,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HOME": str(ENV_DIR / "hf-home"),
            "HF_DATASETS_CACHE": str(ENV_DIR / "hf-datasets"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(ENV_DIR / "gradio"),
            "TRACKIO_DIR": str(ENV_DIR / "trackio"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )


_set_test_environment()
if "huggingface_hub" in sys.modules:  # a plugin imported it before us: its endpoint is stale
    import huggingface_hub.constants as _c

    assert _c.ENDPOINT == HUB_URL, "huggingface_hub was imported before tests/conftest.py set HF_ENDPOINT"


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """The running local Hub (tests.support.hub_server.HubServer) with users alice, bob, spaceowner."""
    from tests.support.hub_server import HubServer

    server = HubServer(tmp_path_factory.mktemp("hub"), users=USERS, port=HUB_PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hub_tokens(hub) -> dict[str, str]:
    """username -> token, for alice, bob and spaceowner."""
    return dict(TOKENS)


@pytest.fixture
def hub_settings(hub, tmp_path):
    """Settings pointing at the local Hub, with a private data dir and short push backoff."""
    from voxspace.settings import Settings

    # A repo name of its own per test: the session's Hub is shared, takes must not pile up across tests.
    return Settings(data_dir=tmp_path / "voxspace-data", hub_endpoint=hub.url, push_retry_max_s=0.5,
                    dataset_repo_name=f"voxspace-recordings-{secrets.token_hex(4)}")


@pytest.fixture(autouse=True)
def _no_sign_in_retry_outlives_its_test():
    """A background sign-in check (voxspace.sign_in_retry) left running would ask the shared Hub's
    whoami during a later test, taking failures that test queued for itself."""
    yield
    if "voxspace.sign_in_retry" in sys.modules:
        sys.modules["voxspace.sign_in_retry"].SignInRetry.close_all()


@pytest.fixture
def fresh_whoami_cache():
    """An empty whoami cache before and after the test (auth caches each token's username)."""
    from voxspace.auth import clear_whoami_cache

    clear_whoami_cache()
    yield
    clear_whoami_cache()


@pytest.fixture
def close_stores():
    """Stop every store's pusher after the test (their spools stay on disk, as after a restart)."""
    yield
    from voxspace.store import TakeStore

    TakeStore.close_all()


@pytest.fixture
def fresh_repo_id(hub):
    """`fresh_repo_id("alice", "recordings")` -> "alice/recordings-1a2b3c4d": the session's Hub is
    shared by every test, so a fixed repo name collides (409) or holds another test's files."""

    def make(namespace: str, name: str) -> str:
        return f"{namespace}/{name}-{secrets.token_hex(4)}"

    return make


@pytest.fixture(scope="session")
def tiny_voxtral_dir(tmp_path_factory) -> Path:
    """A tiny random Voxtral + processor folder, built once per session."""
    from voxspace.devtools.tiny_voxtral import build

    out = tmp_path_factory.mktemp("tiny-voxtral")
    build(out)
    return out
