"""Browser-test harness: the real app.py in a subprocess, headless Debian chromium, a fake microphone.

- Chromium is /usr/bin/chromium via executable_path (never `playwright install`); the fake
  microphone plays an espeak-ng sentence converted by sox to 48 kHz mono 16-bit.
- The app runs as a Space would (SYSTEM=spaces, SPACE_ID, OAUTH_*) with the local Hub-API server
  (`hub` fixture) as its Hub and its OpenID provider, so "Sign in with Hugging Face" runs gradio's
  real OAuth flow; which user signs in is chosen by the `hub_user` cookie of each browser context.
- Everything the run writes (data dirs, GRADIO_TEMP_DIR, logs, failure screenshots) stays in the
  checkout, under pytest's --basetemp (.pytest-tmp/).
- One shared app server (started on a free port, stopped by its PID; the kill test runs its
  own); one browser per session. Recording time is measured inside the page (see pages.py),
  never by the driver.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SENTENCE = "the quick brown fox jumps over the lazy dog"
SPACE_ID = "voxspace-tests/voxspace"
START_TIMEOUT_S = 120  # gradio's import alone takes ~10 s on a loaded 2-core machine
expect.set_options(timeout=30_000)  # page updates wait on a busy 2-core server, never on a clock


def chromium_args(fake_mic: str) -> list[str]:
    """`fake_mic` is a WAV path, with "%noloop" appended to play it once and then silence."""
    return ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_mic}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    """app.py in a subprocess. kill() is SIGKILL (the durability test); start() brings it back on
    the same port and data dir, as a restarted Space would. `own_group`: the app runs in a process
    group of its own, stopped whole (ZeroGPU mode forks a GPU worker per call)."""

    env: dict[str, str]
    workdir: Path
    own_group: bool = False
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None
    starts: int = 0
    loading_pages: list[str] = field(default_factory=list)  # the bodies of 503 answers while starting

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["VOXSPACE_DATA_DIR"])

    @property
    def log_path(self) -> Path:
        return self.workdir / f"app-{self.starts}.log"

    def start(self) -> AppServer:
        self.starts += 1
        env = {**self.env, "GRADIO_SERVER_PORT": str(self.port)}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=self.own_group)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as e:  # 503: the loading page of a ZeroGPU start
                self.loading_pages.append(e.read().decode(errors="replace"))
                time.sleep(0.25)
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"app.py did not answer; log:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.own_group and self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the app this harness started and its workers
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # only the server this harness started, by its PID
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.workdir.glob("app-*.log")))


def space_env(hub, workdir: Path) -> dict[str, str]:
    """The environment of a Space with OAuth enabled, whose Hub and OpenID provider is `hub`."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update({
        "SYSTEM": "spaces", "SPACE_ID": SPACE_ID,
        "OAUTH_CLIENT_ID": hub.oauth_client_id, "OAUTH_CLIENT_SECRET": hub.oauth_client_secret,
        "OAUTH_SCOPES": "openid profile contribute-repos", "OPENID_PROVIDER_URL": hub.url,
        "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"), "HF_HOME": str(workdir / "hf-home"),
        "VOXSPACE_DATA_DIR": str(workdir / "data"), "VOXSPACE_PUSH_RETRY_MAX_S": "0.5",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("SPACE_HOST", None)  # gradio would send the OAuth callback to https://SPACE_HOST
    return env


def local_env(hub, workdir: Path, token: str) -> dict[str, str]:
    """The app run on someone's own machine with their token in HF_TOKEN (no Space, no OAuth)."""
    env = space_env(hub, workdir)
    for var in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES",
                "OPENID_PROVIDER_URL"):
        env.pop(var)
    env["HF_TOKEN"] = token
    return env


def _espeak(text: str, out: Path, *, pad_after_s: float = 0.0) -> Path:
    raw = out.with_name(out.stem + "-raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    sox = ["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(out)]
    subprocess.run(sox + (["pad", "0.2", str(pad_after_s)] if pad_after_s else []), check=True)
    return out


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """The looping fake microphone: one sentence of espeak-ng speech."""
    return _espeak(SENTENCE, tmp_path_factory.mktemp("mic") / "speech.wav")


@pytest.fixture(scope="session")
def speech_then_silence_wav(tmp_path_factory) -> Path:
    """Played once (%noloop): speech, then silence for the hands-free stop."""
    return _espeak(SENTENCE, tmp_path_factory.mktemp("mic-once") / "speech-silence.wav", pad_after_s=6)


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def launch_browser(playwright_driver):
    """launch_browser(fake_mic) -> a chromium whose microphone plays `fake_mic`; closed at the end."""
    browsers = []

    def launch(fake_mic: str):
        b = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=chromium_args(fake_mic))
        browsers.append(b)
        return b

    yield launch
    for b in browsers:
        b.close()


@pytest.fixture(scope="session")
def mic_browser(launch_browser, speech_wav):
    return launch_browser(str(speech_wav))


@pytest.fixture(scope="session")
def space_app(hub, tmp_path_factory):
    """app.py as a Space with OAuth, shared by every test that does not restart it (starts cost
    10-20 s on a loaded 2-core machine)."""
    workdir = tmp_path_factory.mktemp("space-app")
    app = AppServer(space_env(hub, workdir), workdir).start()
    yield app
    app.stop()


@pytest.fixture
def artefacts(request, tmp_path):
    """Where a failing test leaves its screenshots (inside the checkout)."""
    return tmp_path
