"""A Space process for the ZeroGPU tests: VoxSpace's run service behind a Gradio API, in ZeroGPU mode.

    env: SPACES_ZERO_GPU=true, SPACES_ZERO_DEVICE_API_URL=<DeviceAPI.url>, VOXSPACE_BASE_MODEL,
         VOXSPACE_DATA_DIR, VOXSPACE_SLICE_CAP_S, GRADIO_SERVER_PORT,
         PYTHONPATH=tests/support/zerogpu_site:<checkout>   (the CPU worker seam, see zerogpu_seam.py)
    python -m tests.support.zerogpu_space

It starts as app.py does on ZeroGPU (spaces first, the base model loaded at start-up in the main
thread, then launch(), which packs it) and exposes what the Train tab calls, as API endpoints:
`start` (run_service.start_run for a visitor) and `wait` (polls the run until it ends, as the
tab's timer does). Tests call them with gradio_client and the visitor's X-IP-Token header, so each
call is a real Gradio request that `spaces` reads the visitor from.
"""

from __future__ import annotations

import json
import logging
import time

import gradio as gr
import spaces  # noqa: F401 - first, as on a Space

from voxspace import gpu, run_service
from voxspace.auth import Identity
from voxspace.errors import VoxSpaceError
from voxspace.settings import Settings
from voxspace.train import TrainConfig

SETTINGS = Settings.from_env()


def _identity(visitor: str) -> Identity:
    return Identity(visitor, None, "local")  # no Hub token: the run's checkpoint stays on this disk


def start(visitor: str, run_name: str, data: str, config: str, resume: bool, max_steps: int) -> str:
    """Start (or resume) `visitor`'s run; returns {"refused": sentence} or {"started": run_dir}."""
    identity = _identity(visitor)
    run_dir = run_service.runs_root(SETTINGS, identity) / run_name
    try:
        run_service.start_run(
            SETTINGS,
            identity,
            run_dir=run_dir,
            data=data or None,
            config=TrainConfig.from_dict(json.loads(config)) if config else None,
            resume=resume,
            max_steps_per_slice=int(max_steps) or None,
            max_new_tokens=6,
        )
    except VoxSpaceError as e:
        return json.dumps({"refused": e.user_message})
    return json.dumps({"started": str(run_dir)})


def wait(visitor: str) -> str:
    """Poll the visitor's run until it has finished; its phase, sentence, log and evaluation."""
    run = run_service.active_run(_identity(visitor))
    while not (p := run_service.progress(run)).finished:
        time.sleep(0.2)
    report = p.eval
    return json.dumps(
        {
            "phase": p.phase,
            "step": p.step,
            "total": p.total,
            "message": p.message,
            "log": run.lines(),
            "wer_after": None if report is None else report.wer_after,
            "per_take": None
            if report is None
            else [[r.take_id, r.base, r.finetuned] for r in report.per_take],
        }
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gpu.load_base_at_startup(SETTINGS.base_model)  # main thread, before launch(): as app.py does
    with gr.Blocks() as demo:
        inputs = [gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Checkbox(), gr.Number()]
        gr.Button().click(start, inputs, gr.Textbox(), api_name="start")
        gr.Button().click(wait, [gr.Textbox()], gr.Textbox(), api_name="wait")
    demo.queue(default_concurrency_limit=8).launch()


if __name__ == "__main__":
    main()
