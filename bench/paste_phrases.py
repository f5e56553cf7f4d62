"""How long "Your own phrases" takes for a long list: paste -> in the box, and "Use these phrases" -> used.

    python bench/paste_phrases.py [--lines 3000] [--repeats 3] [--fill-repeats 1]

Starts its own local Hub-API server and `python app.py` signed in with a local token, drives
/usr/bin/chromium headless. Two ways of getting the text into the box, interleaved per repeat:
- paste: the text on the clipboard, Ctrl+V (what a person does);
- fill:  Playwright's fill() (how issue 16's "3,000 phrases take 62 s" was most likely measured).
Prints median, min and max seconds per way and phase. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app_latency import TOKEN, _free_port, _summary, app_env  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _start_app(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**env, "GRADIO_SERVER_PORT": str(port)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("app.py did not answer within 120 s")


def one_try(browser, url: str, text: str, way: str) -> tuple[float, float]:
    """(seconds until the box holds the text, seconds from the click until the list is in use)."""
    n = len(text.splitlines())
    ctx = browser.new_context(permissions=["microphone", "clipboard-read", "clipboard-write"])
    try:
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        page.goto(url)
        page.locator("#custom-section").get_by_text("Your own phrases").click()
        box = page.locator("#custom-text textarea")
        box.click()
        t0 = time.perf_counter()
        if way == "paste":
            page.evaluate("(s) => navigator.clipboard.writeText(s)", text)
            t0 = time.perf_counter()
            page.keyboard.press("Control+V")
        else:
            box.fill(text)
        page.wait_for_function("n => document.querySelector('#custom-text textarea').value.length >= n",
                               arg=len(text))
        in_box = time.perf_counter() - t0
        t1 = time.perf_counter()
        page.locator("#custom-btn").click()
        page.locator("#custom-status").get_by_text(f"Using your {n} phrases").wait_for()
        return in_box, time.perf_counter() - t1
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fill-repeats", type=int, default=1, help="fill() takes tens of seconds a try")
    args = ap.parse_args()
    text = "\n".join(f"my own phrase number {i} about the clinic" for i in range(args.lines))

    from playwright.sync_api import sync_playwright

    from tests.support.hub_server import HubServer

    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp_s:
        tmp = Path(tmp_s)
        hub = HubServer(tmp / "hub", users={TOKEN: "bench"}, port=_free_port())
        hub.start()
        env = app_env(hub.url, tmp)
        proc, url = _start_app(env)
        got: dict[str, dict[str, list[float]]] = {w: {"in_box": [], "in_use": []} for w in ("paste", "fill")}
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM)
                for r in range(args.repeats):  # interleaved: each repeat does both ways, order alternating
                    ways = ["paste", "fill"] if r % 2 == 0 else ["fill", "paste"]
                    for way in ways:
                        if way == "fill" and len(got["fill"]["in_box"]) >= args.fill_repeats:
                            continue
                        in_box, in_use = one_try(browser, url, text, way)
                        got[way]["in_box"].append(in_box)
                        got[way]["in_use"].append(in_use)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            hub.stop()

    figures = {f"{way}_{phase}": _summary(xs)
               for way, phases in got.items() for phase, xs in phases.items() if xs}
    figures.update(lines=args.lines, chars=len(text), cpu_count=os.cpu_count(),
                   load_average_1m=round(os.getloadavg()[0], 2))
    print(f"{args.lines} lines ({len(text)} characters); load average {figures['load_average_1m']}")
    print(f"{'way / phase':<18}{'median':>9}{'min':>9}{'max':>9}{'n':>4}")
    for name, f in figures.items():
        if isinstance(f, dict):
            print(f"{name:<18}{f['median_s']:>8.3f}s{f['min_s']:>8.3f}s{f['max_s']:>8.3f}s{f['n']:>4}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
