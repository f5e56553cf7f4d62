"""The Train tab: choose a preset, see the hardware and the GPU minutes it needs, train, follow it live.

Every action calls voxspace.run_service, exactly as `python -m voxspace train` does. The run itself
lives in run_service (one per person, found again by identity), so a reloaded page or a second
tab follows the same run. The page follows it with a gr.Timer that is always on and reads the
server's state on every tick: no event (a Start answered late, a tab opened mid-run) can leave the
page showing something else for more than a tick. Runs are written under publish.runs_root, where
the Publish tab lists them.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from voxspace.auth import sign_in_hint
from voxspace.errors import VoxSpaceError
from voxspace.ui.progress import MILESTONES, status_html
from voxspace.ui.publish import runs_root
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

PRESETS = {
    "quick": "Quick: 3 passes over your takes with a small adapter. Minutes; a first check that it helps.",
    "standard": "Standard: 5 passes, a medium adapter. The usual choice once you have 50+ takes.",
    "thorough": "Thorough: 10 passes, a larger adapter. Longest; for hundreds of takes.",
}
ADVANCED = ("rank", "alpha", "lr", "epochs", "batch_size", "grad_accum", "precision", "slice_seconds",
            "auto_batch")
# Boxes after the ADVANCED values, in this order; a preset never changes them. A handler given fewer
# values (a test, an older caller) reads the missing ones as unticked.
EXTRAS = ("sliced", "acoustic")
EVAL_HEADERS = ["Measure", "Before", "After", "Relative change"]
TAKE_HEADERS = ["Take", "Reference", "Base model", "Fine-tuned"]
UNEXPECTED = "Training could not start (the takes or the model could not be read). Try again in a minute."
NO_CURVE = "<p>The training loss is drawn here from the first step on.</p>"


# --- pure handlers (tested without a browser) ------------------------------------------------------
def readiness(sess: Session | None) -> tuple[str, str]:
    """(what the data is ready for, the command that runs the same training from a terminal)."""
    if sess is None:
        return "Loading your takes…", ""
    if sess.store is None:
        return sign_in_hint(sess.settings, "To train on your takes"), ""
    st = sess.store.stats()
    first = MILESTONES[0][0]
    text = (f"You have **{st.takes}** takes ({st.minutes:.1f} minutes): **{st.train}** to train on and "
            f"**{st.test}** held out to measure the error rate before and after.")
    if st.takes < first:
        text += f" Record at least {first} takes for a first useful model ({first - st.takes} to go)."
    cmd = shlex.join(["python", "-m", "voxspace", "train", "--data", st.location, "--base-model",
                      sess.settings.base_model, "--out", str(runs_root(sess) / "my-first-run"),
                      "--preset", "quick"])
    return text, cmd


def preset_values(name: str) -> list[Any]:
    """The advanced fields filled in from a preset (the person may then change any of them)."""
    from voxspace import gpu
    from voxspace.train import TrainConfig

    precision = gpu.default_precision()  # on ZeroGPU the shared base is loaded in bf16
    cfg = TrainConfig.preset(name or "quick", **({"precision": precision} if precision else {}))
    return [getattr(cfg, f) for f in ADVANCED]


def config_from(preset: str, *values: Any) -> Any:
    """A TrainConfig from the preset and the advanced fields (validated later, before any loading)."""
    from voxspace.train import ACOUSTIC_LAYERS, TrainConfig

    def plain(v: Any) -> Any:  # gr.Number gives floats; whole numbers must stay ints for validate()
        return int(v) if isinstance(v, float) and v.is_integer() else v

    overrides = {f: plain(v) for f, v in zip(ADVANCED, values, strict=False) if v not in (None, "")}
    if _extra(values, "acoustic"):
        overrides["adapt_encoder"] = ACOUSTIC_LAYERS
    return TrainConfig.preset(preset or "quick", **overrides)


def acoustic_note(cfg: Any) -> str:
    """What the acoustic option costs, in words, for the plan shown before Start."""
    if not cfg.adapt_encoder:
        return ""
    extra = round(100 * (cfg.step_cost_factor() - 1))
    return (f" Acoustic adaptation is on: the top {cfg.adapt_encoder} audio-encoder layers learn too, "
            f"so each step takes about {extra}% longer (included in the estimate).")


def plan(sess: Session | None, preset: str, *values: Any) -> str:
    """The detected hardware and the GPU minutes the chosen settings need, shown before Start."""
    from voxspace import gpu, run_service

    hw = gpu.detect_hardware()
    if sess is None or sess.store is None:
        return f"Hardware: **{hw.description}**."
    try:
        cfg = config_from(preset, *values).validate()
    except VoxSpaceError as e:
        return f"Hardware: **{hw.description}**. {e.user_message}"
    from voxspace import timings

    st = sess.store.stats()
    measured = timings.load(sess.settings.data_dir, hw.kind, cfg.precision, sess.settings.base_model)
    minutes = run_service.estimate(cfg, st.takes, st.minutes, hw.kind, measured)
    shown = max(round(minutes, 1), 0.1) if minutes > 0 else 0  # a short run is not "about 0 minutes"
    unit = "CPU minutes" if hw.kind == "cpu" else "GPU minutes"
    basis = (" (from the speed your last run here measured)" if measured else
             " (a first guess: your first run here measures this machine's speed)")
    quota = (" A free account gets 5 ZeroGPU minutes a day (PRO: 40); the run resumes the next day if it "
             "runs out." if hw.kind == "zerogpu" else "")
    return (f"Hardware: **{hw.description}**. Estimated time: **about {shown:g} {unit}**{basis}."
            f"{acoustic_note(cfg)}{quota}")


def _idle_buttons(sess: Session | None) -> tuple[Any, Any, Any]:
    """(Start, Cancel, Resume) when nothing is running: Resume only if there is a run to resume."""
    from voxspace import run_service

    found = None
    if sess is not None and sess.store is not None:
        found = run_service.find_resumable(sess.settings, sess.identity)
    resume = gr.update(visible=False)
    if found:
        new = found.new_takes(t.take_id for t in sess.store.takes())
        wait = f"; {new} newer take{'s' if new != 1 else ''} wait for the next run" if new else ""
        resume = gr.update(visible=True, value=f"Resume (step {found.step} of {found.total}){wait}")
    return gr.update(interactive=True), gr.update(interactive=False), resume


def _running_buttons() -> tuple[Any, Any, Any]:
    return gr.update(interactive=False), gr.update(interactive=True), gr.update(visible=False)


def _follow_again(sess: Session | None) -> None:
    """The next tick sends the whole view again, over whatever this handler's answer showed."""
    if sess is not None:
        sess.train_shown = None


def start(sess: Session | None, preset: str, *values: Any) -> tuple[Any, ...]:
    """Start a new run on this person's takes; returns (status, start, cancel, resume)."""
    from voxspace import run_service

    _follow_again(sess)
    if sess is None or sess.store is None:
        return (status_html("info", sign_in_hint(sess.settings if sess else None, "To train")),
                *_idle_buttons(sess))
    try:
        config = config_from(preset, *values)
        sess.store.flush(timeout=60)  # takes still on their way to the repo are trained on too
        run_service.start_run(sess.settings, sess.identity, data=sess.store.stats().location,
                              run_dir=runs_root(sess) / time.strftime("run-%Y%m%d-%H%M%S"), config=config,
                              sliced=_sliced(values), pause_when_page_closed=None)
    except VoxSpaceError as e:
        log.info("training refused: %s", e)
        return status_html("error", e.user_message), *_idle_buttons(sess)
    except Exception:  # e.g. the Hub unreachable while fetching the takes: a sentence, not a trace
        log.exception("training could not start")
        return (status_html("error", UNEXPECTED), *_idle_buttons(sess))
    return status_html("info", "Starting…"), *_running_buttons()


def compare(sess: Session | None, preset: str, *values: Any) -> Iterator[str]:
    """The same short run with and without acoustic adaptation, both WERs, the better kept
    (voxspace.compare). Streams the latest line while the two runs go; the Train tab's timer shows
    each run's progress as usual."""
    from voxspace.compare import MIN_HELD_OUT, compare_encoder_option

    _follow_again(sess)
    if sess is None or sess.store is None:
        yield status_html("info", "Sign in with Hugging Face and record some takes first.")
        return
    held_out = sess.store.stats().test
    if held_out < MIN_HELD_OUT:
        yield status_html("info", f"A comparison needs at least {MIN_HELD_OUT} held-out takes to tell "
                          f"the two apart; you have {held_out}. Record more takes first (about 1 in 8 is "
                          "held out).")
        return
    try:
        config = config_from(preset, *values[: len(ADVANCED)]).validate()  # the box itself is compared
    except VoxSpaceError as e:
        yield status_html("rejected", e.user_message)
        return
    sess.store.flush(timeout=60)
    lines: list[str] = []
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = compare_encoder_option(
                sess.settings, sess.identity, data=sess.store.stats().location, config=config,
                root=runs_root(sess), name=time.strftime("compare-%Y%m%d-%H%M%S"), sliced=_sliced(values),
                on_line=lines.append)
        except VoxSpaceError as e:
            outcome["error"] = e.user_message
        except Exception:  # a sentence, not a trace; the log has the rest
            log.exception("the comparison failed")
            outcome["error"] = UNEXPECTED

    worker = threading.Thread(target=work, name="voxspace-compare", daemon=True)
    worker.start()
    shown = None
    while worker.is_alive():
        if lines and lines[-1] != shown:
            shown = lines[-1]
            yield status_html("info", shown)
        worker.join(1.0)
    if "error" in outcome:
        yield status_html("rejected", outcome["error"])
    else:
        yield status_html("done", outcome["result"].sentence() + " It is on the Publish tab.")


def _extra(values: tuple[Any, ...], name: str) -> bool:
    """One of the EXTRAS boxes, from a handler's values."""
    i = len(ADVANCED) + EXTRAS.index(name)
    return bool(values[i]) if len(values) > i else False


def _sliced(values: tuple[Any, ...]) -> bool | None:
    """The 'train in slices' box: ticked forces slices, unticked means auto."""
    return True if _extra(values, "sliced") else None


def resume(sess: Session | None) -> tuple[Any, ...]:
    """Continue the run find_resumable offers (pulled from the model repo after a restart)."""
    from voxspace import run_service

    _follow_again(sess)
    found = run_service.find_resumable(sess.settings, sess.identity) if sess and sess.store else None
    if found is None:
        return status_html("info", "There is no stopped run to resume."), *_idle_buttons(sess)
    try:
        run_service.start_run(sess.settings, sess.identity, run_dir=found.run_dir, resume=True,
                              pause_when_page_closed=None)
    except VoxSpaceError as e:
        return status_html("error", e.user_message), *_idle_buttons(sess)
    except Exception:
        log.exception("training could not resume")
        return (status_html("error", UNEXPECTED), *_idle_buttons(sess))
    return status_html("info", "Resuming…"), *_running_buttons()


def cancel(sess: Session | None) -> str:
    from voxspace import run_service

    _follow_again(sess)
    run = run_service.active_run(sess.identity) if sess else None
    if run is None or run_service.progress(run).finished:
        return status_html("info", "No training run is going.")
    run_service.cancel(run)
    return status_html("info", "Stopping at the end of this step; the checkpoint is kept.")


@dataclass
class View:
    """What one poll shows (the order of poll()'s outputs)."""

    status: str
    bar: str
    curve: str  # the loss curve, an SVG with role=img and a text alternative
    log: str
    scores: list[list[str]]
    per_take: list[list[str]]


def view(sess: Session | None) -> View | None:
    """The person's current run, as the page shows it; None when there is none in this process."""
    from voxspace import run_service
    from voxspace.loss_curve import loss_svg

    run = run_service.active_run(sess.identity) if sess else None
    if run is None:
        return None
    p = run_service.progress(run)
    kind = {"done": "done", "failed": "error"}.get(p.phase, "info")
    pct = round(100 * p.step / p.total) if p.total else 0
    bar = (f'<label for="train-bar">Training progress: step {p.step} of {p.total or "?"}</label> '
           f'<progress id="train-bar" max="100" value="{pct}">{pct}%</progress>')
    try:
        curve = loss_svg(p.losses, heldout=p.heldout, best_step=p.best_step)
    except ValueError:  # no finite point yet
        curve = NO_CURVE
    scores, per_take = ([], [])
    if p.eval is not None:
        scores, per_take = eval_tables(p.eval)
    return View(status_html(kind, run_service.describe_phase(p)), bar, curve, "\n".join(p.log), scores,
                per_take)


def eval_tables(report: Any) -> tuple[list[list[str]], list[list[str]]]:
    """(WER/CER before, after and relative change; reference, base and fine-tuned per take)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def change(before: float, after: float | None) -> str:
        return "-" if after is None or before == 0 else f"{100 * (after - before) / before:+.0f}%"

    scores = [["Word error rate (WER)", pct(report.wer_before), pct(report.wer_after),
               change(report.wer_before, report.wer_after)],
              ["Character error rate (CER)", pct(report.cer_before), pct(report.cer_after),
               change(report.cer_before, report.cer_after)]]
    per_take = [[r.take_id, r.reference, r.base, r.finetuned or "-"] for r in report.per_take]
    return scores, per_take


def _shown_key(run: Any) -> tuple[Any, ...]:
    """What a tick compares with the last one it sent: a new run, phase, step or log line changes it."""
    from voxspace import run_service

    if run is None:
        return ("no run",)
    p = run_service.progress(run)
    return (id(run), p.phase, p.step, p.total, len(run.lines()), len(p.losses), len(p.heldout), p.runs_ahead,
            p.eval is not None)


NO_CHANGE = (gr.skip(),) * 10  # poll's outputs: the six of View, the estimate, then Start, Cancel, Resume


def poll(sess: Session | None, preset: str | None = None, *values: Any) -> tuple[Any, ...]:
    """The always-on timer's tick: the page shows the server's run. Sends only what changed since
    this page's last tick; any handler that wrote to the tab makes the next tick send it all.
    Once a run has ended, the estimate for the settings on the page is redrawn from the speed that
    run measured (given `preset` and the advanced `values`, as the page sends them)."""
    from voxspace import run_service

    if sess is None:
        return NO_CHANGE
    run = run_service.active_run(sess.identity)
    key = _shown_key(run)
    if key == sess.train_shown:
        return NO_CHANGE
    sess.train_shown = key
    v = view(sess)
    if v is None:
        return (gr.skip(),) * 7 + _idle_buttons(sess)
    finished = run_service.progress(run).finished
    buttons = _idle_buttons(sess) if finished else _running_buttons()
    estimate = plan(sess, preset, *values) if finished and preset is not None else gr.skip()
    return (v.status, v.bar, v.curve, v.log, v.scores, v.per_take, estimate, *buttons)


def on_open(sess: Session | None, preset: str, *values: Any) -> tuple[Any, ...]:
    """Opening the tab: readiness, plan and terminal command; the run itself the next tick shows."""
    from voxspace import run_service
    from voxspace.ui import jobs_panel

    jobs_panel.reattach(sess)  # a Job launched before a restart is followed again
    text, cmd = readiness(sess)
    run = run_service.active_run(sess.identity) if sess else None
    going = run is not None and not run_service.progress(run).finished
    buttons = _running_buttons() if going else _idle_buttons(sess)
    _follow_again(sess)  # set last: a Start answered while this ran is shown again by the next tick
    return (text, plan(sess, preset, *values), cmd, *buttons)


def dashboard_link(sess: Session | None) -> str:
    """A link to trackio's dashboard of this machine's runs (loss, learning rate, WER...)."""
    from voxspace.tracking import dashboard

    if sess is None or sess.settings.in_space:
        return ("Metrics are logged with trackio inside the Space; the dashboard opens when you run "
                "VoxSpace on your own machine.")
    try:
        url = dashboard(sess.settings.data_dir / "trackio")
    except Exception:  # a dashboard that cannot start must not break the page
        log.exception("trackio dashboard did not start")
        return "The training dashboard could not start; the metrics are still saved."
    return f"[Open the training dashboard]({url}) (opens trackio in a new tab)."


# --- layout ----------------------------------------------------------------------------------------
@dataclass
class TrainTab:
    """The components app.py wires to the tab's select event."""

    open_inputs: list[Any]
    open_outputs: list[Any]


def build(session: gr.State) -> TrainTab:
    from voxspace.train import ACOUSTIC_LAYERS, ENCODER_LAYER_STEP_SHARE

    gr.Markdown("## Train your model\nA small LoRA adapter is fine-tuned on your takes, and the takes held "
                "out are used to measure the error rate before and after.")
    text, cmd = readiness(None)
    ready = gr.Markdown(text, elem_id="train-readiness")
    preset = gr.Radio(list(PRESETS), value="quick", label="Preset", elem_id="train-preset",
                      info=" ".join(PRESETS.values()))
    q = preset_values("quick")
    acoustic = gr.Checkbox(
        False, label="My speech sounds very different from typical speech", elem_id="train-acoustic",
        info=f"Also adapts how the model hears sounds (the top {ACOUSTIC_LAYERS} layers of its audio "
        "encoder), not only how it reads them: helps most for speech far from typical; each step takes about "
        f"{round(100 * ACOUSTIC_LAYERS * ENCODER_LAYER_STEP_SHARE)}% longer.")
    with gr.Row():
        compare_btn = gr.Button("Not sure? Compare with and without it (two short runs)", size="sm",
                                elem_id="train-compare")
        compare_out = gr.HTML(elem_id="train-compare-result")
    with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
        with gr.Row():
            rank = gr.Number(q[0], label="LoRA rank", precision=0, minimum=1, elem_id="train-rank")
            alpha = gr.Number(q[1], label="LoRA alpha", precision=0, minimum=1, elem_id="train-alpha")
            lr = gr.Number(q[2], label="Learning rate", elem_id="train-lr")
        with gr.Row():
            epochs = gr.Number(q[3], label="Epochs (passes over the takes)", precision=0, minimum=1,
                               elem_id="train-epochs")
            batch = gr.Number(q[4], label="Batch size (takes per pass)", precision=0, minimum=1,
                              elem_id="train-batch")
            accum = gr.Number(q[5], label="Gradient accumulation (passes per step)", precision=0, minimum=1,
                              elem_id="train-accum")
        with gr.Row():
            precision = gr.Radio(["8bit", "bf16", "fp32"], value=q[6], label="Base model precision",
                                 info="8-bit needs the least memory but took 1.4-2.2x the GPU seconds per "
                                      "step of bf16 on an H100 (README, Performance). On ZeroGPU only bf16 "
                                      "is offered: the base model is loaded once, in bf16, when the Space "
                                      "starts.",
                                 elem_id="train-precision")
            slice_s = gr.Number(q[7], label="Seconds of training per GPU slice", precision=0, minimum=1,
                                elem_id="train-slice")
        auto_batch = gr.Checkbox(q[8], label="Fit takes per pass to the GPU's free memory",
                                 info="Each step still learns from batch size × accumulation takes.",
                                 elem_id="train-auto-batch")
        sliced = gr.Checkbox(False, label="Train in slices with a checkpoint after each, as on ZeroGPU "
                             "(always on there)", elem_id="train-sliced")
    advanced = [rank, alpha, lr, epochs, batch, accum, precision, slice_s, auto_batch, sliced, acoustic]
    fields = advanced[: len(ADVANCED)]
    estimate = gr.Markdown(elem_id="train-estimate")
    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
        cancel_btn = gr.Button("Cancel", interactive=False, elem_id="train-cancel")
        resume_btn = gr.Button("Resume", visible=False, elem_id="train-resume")
    from voxspace.ui import jobs_panel

    jobs = jobs_panel.build()  # "Train on Hugging Face Jobs": machine, timeout, estimate
    status = gr.HTML(elem_id="train-status")
    bar = gr.HTML(elem_id="train-progress")
    curve = gr.HTML(NO_CURVE, label="Training loss", elem_id="train-loss")
    log_box = gr.Textbox(label="Latest log lines", lines=6, interactive=False, elem_id="train-log")
    # wrap=True: long transcripts wrap in their cells, so the Fine-tuned column stays on screen.
    scores = gr.Dataframe(headers=EVAL_HEADERS, label="Error rate on the held-out takes", interactive=False,
                          elem_id="train-scores", wrap=True)
    per_take = gr.Dataframe(headers=TAKE_HEADERS, label="Each held-out take", interactive=False,
                            elem_id="train-per-take", wrap=True, column_widths=["12%", "29%", "29%", "30%"])
    with gr.Row():
        dash_btn = gr.Button("Show the training dashboard link", elem_id="train-dashboard")
        dash = gr.Markdown(elem_id="train-dashboard-link")
    with gr.Accordion("Run the same training from a terminal", open=False, elem_id="train-cli"):
        command = gr.Textbox(cmd, label="Command", interactive=False, buttons=["copy"],
                             elem_id="train-command")
    timer = gr.Timer(1.0)  # always on: see the module docstring

    buttons = [start_btn, cancel_btn, resume_btn]
    jobs_panel.wire(jobs, session, preset, advanced, status, buttons)
    preset.change(preset_values, [preset], fields, show_progress="hidden")
    for c in [preset, *fields, acoustic]:
        c.change(plan, [session, preset, *advanced], [estimate], show_progress="hidden")
    start_btn.click(start, [session, preset, *advanced], [status, *buttons])
    resume_btn.click(resume, [session], [status, *buttons])
    compare_btn.click(compare, [session, preset, *advanced], [compare_out], show_progress="hidden")
    cancel_btn.click(cancel, [session], [status])
    timer.tick(poll, [session, preset, *advanced], [status, bar, curve, log_box, scores, per_take, estimate,
                                                    *buttons], show_progress="hidden")
    dash_btn.click(dashboard_link, [session], [dash])
    return TrainTab([session, preset, *advanced], [ready, estimate, command, *buttons])
