"""How fast the page answers and how fast a take is safe: cold start, Save -> acknowledged, -> on the Hub.

    python bench/app_latency.py [--starts 3] [--takes 10] [--json out.json]

Starts its own local Hub-API server (tests/support/hub_server.py) and never reaches the real Hub.
- cold start: `python app.py` spawned to the first HTTP 200 on / (targets: <= 5 s on 2 cores);
- acknowledged: the Save handler (voxspace.ui.record.save_take: audio checks + durable spool
  write, what the person waits for; target <= 0.5 s), on a 3 s 48 kHz take as a browser sends it;
- on the Hub: from Save until the store reports nothing pending (background push, one commit).
Prints a table and the same figures as JSON. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKEN = "hf_benchuser" + "0" * 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(hub_url: str, tmp: Path) -> dict[str, str]:
    """The environment of a bench's `python app.py`: signed in with TOKEN on the local Hub, every
    cache and data folder under `tmp`."""
    return {**os.environ, "HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN,
            "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HOME": str(tmp / "hf-home"),
            "GRADIO_TEMP_DIR": str(tmp / "gradio"), "VOXSPACE_DATA_DIR": str(tmp / "app-data")}


def cold_start(env: dict[str, str]) -> float:
    """Seconds from spawning app.py to its first HTTP 200."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**env, "GRADIO_SERVER_PORT": str(port)})
    try:
        while proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"app.py exited with {proc.returncode}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def save_latencies(tmp: Path, hub_url: str, takes: int) -> tuple[list[float], list[float]]:
    """(Save -> acknowledged, Save -> on the Hub) in seconds, for `takes` takes in a row."""
    import gradio as gr

    from tests.signals import silence, speech, wav_bytes
    from voxspace.settings import Settings
    from voxspace.ui.record import save_take
    from voxspace.ui.session import start_session

    settings = Settings(data_dir=tmp / "data", hub_endpoint=hub_url, push_retry_max_s=0.5,
                        space_id="bench/voxspace")
    sess = start_session(settings, profile=gr.OAuthProfile(
        {"preferred_username": "bench", "name": "bench", "profile": "", "picture": ""}),
        token=gr.OAuthToken(token=TOKEN, scope="openid", expires_at=0))
    x, sr = speech("The bus to the city centre leaves at half past seven, please be on time.")
    sess.advance(set())
    ack, hub = [], []
    for i in range(takes):  # a little quieter each time: the store refuses audio it already holds
        take = wav_bytes(np.concatenate([silence(0.4, sr), x * (1 - 0.002 * i), silence(0.4, sr)]), sr)
        t0 = time.perf_counter()
        _, _, _, saved = save_take(sess, take)
        ack.append(time.perf_counter() - t0)
        assert saved, "the bench take was rejected"
        while sess.store.stats().pending:
            time.sleep(0.01)
        hub.append(time.perf_counter() - t0)
    return ack, hub


def _summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median_s": round(statistics.median(xs), 3), "min_s": round(xs[0], 3), "max_s": round(xs[-1], 3),
            "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--takes", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp_s:
        tmp = Path(tmp_s)
        from tests.support.hub_server import HubServer

        hub = HubServer(tmp / "hub", users={TOKEN: "bench"}, port=_free_port())
        hub.start()
        env = app_env(hub.url, tmp)
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ.update({k: env[k] for k in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_HOME",
                                               "HF_HUB_DISABLE_PROGRESS_BARS")})
        try:
            starts = [cold_start(env) for _ in range(args.starts)]
            ack, on_hub = save_latencies(tmp, hub.url, args.takes)
        finally:
            hub.stop()

    figures = {"cold_start_to_http_200": _summary(starts), "save_to_acknowledged": _summary(ack),
               "save_to_on_the_hub": _summary(on_hub), "cpu_count": os.cpu_count(),
               "load_average_1m": round(os.getloadavg()[0], 2)}
    print(f"{'measure':<26}{'median':>9}{'min':>9}{'max':>9}{'n':>4}")
    for name in ("cold_start_to_http_200", "save_to_acknowledged", "save_to_on_the_hub"):
        f = figures[name]
        print(f"{name:<26}{f['median_s']:>8.3f}s{f['min_s']:>8.3f}s{f['max_s']:>8.3f}s{f['n']:>4}")
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
