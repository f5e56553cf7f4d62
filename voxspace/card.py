"""The adapter's model card: metadata the Hub indexes, a body a person reads, a snippet that runs.

Built with huggingface_hub's ModelCard / ModelCardData / EvalResult from a run's RunRecord, so the
model-index carries the exact WER/CER the evaluation measured. Base and fine-tuned numbers share a
metric type (`wer`, `cer`) and are told apart by `config` ("base" / "fine-tuned") and by name.

    from voxspace.card import preview_card
    print(preview_card("runs/2026-11-26", "me/voxtral-my-voice"))
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voxspace.loss_curve import loss_svg
from voxspace.model import describe_adaptation
from voxspace.run_record import RunRecord
from voxspace.settings import LANGUAGE_NAMES

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelCard

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
LOSS_SVG = "loss.svg"
LOSS_PNG = "loss.png"  # used instead when the training run drew one
TASK = "automatic-speech-recognition"
BASE_CONFIG, TUNED_CONFIG = "base", "fine-tuned"
TAGS = ["voxspace", "voxtral", "lora", "personalized-asr", "speech-recognition"]
# Used when the base repo's card cannot be read (offline, gated): what those repos declare.
KNOWN_LICENSES = {
    "mistralai/Voxtral-Mini-3B-2507": "apache-2.0",
    "mistralai/Voxtral-Small-24B-2507": "apache-2.0",
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# huggingface_hub's cache keeps a repo at <cache>/models--<owner>--<name>/snapshots/<commit>/
_CACHE_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")


@dataclass
class CardFiles:
    """What goes into the model repo beside the adapter: README.md and the loss image, as bytes."""

    readme: str
    images: dict[str, bytes] = field(default_factory=dict)

    def as_repo_files(self) -> dict[str, bytes]:
        return {"README.md": self.readme.encode(), **self.images}


def is_repo_id(value: str) -> bool:
    """True for `owner/name`; False for local folders such as `./takes` or `/tmp/x`."""
    return bool(_REPO_ID.match(value)) and not Path(value).exists()


def base_hub_id(base_model: str) -> str | None:
    """The Hub repo a base model can be loaded from by a reader; None when nobody else can load it.

    A repo id is itself. A local folder names its repo when it is a huggingface_hub cache snapshot
    (models--owner--name/snapshots/...) or when its config.json keeps `_name_or_path` as a repo
    id. Any other folder exists only on the trainer's machine: its path must not reach the card.
    """
    if is_repo_id(base_model):
        return base_model
    path = Path(base_model).expanduser()
    found = _CACHE_SNAPSHOT.search((path.resolve() if path.exists() else path).as_posix())
    if found:
        return f"{found[1]}/{found[2]}"
    try:
        name = json.loads((path / "config.json").read_text()).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and is_repo_id(name) else None


def base_model_license(base_model: str, api: HfApi | None = None) -> str:
    """The base model's declared license, so the adapter inherits it.

    Reads the base repo's card metadata when the Hub answers; otherwise falls back to the licenses
    the Voxtral repos declare, and to "other" (with a pointer to the base card) for anything else.
    """
    hub_id = base_hub_id(base_model)  # a local copy inherits the license of the repo it came from
    if api is not None and hub_id is not None:
        try:
            lic = _declared_license(api, hub_id)
            if lic:
                return lic
        except Exception as e:  # offline, gated, missing: the fallback below is still correct
            log.info("could not read the license of %s: %s", hub_id, type(e).__name__)
    return KNOWN_LICENSES.get(hub_id or "", "other")


def _declared_license(api: HfApi, repo_id: str) -> str | None:
    # model_info carries the card metadata on the Hub; else read the README's front matter itself
    # (into a throwaway cache: nothing read for one visitor should be served to another).
    import tempfile

    from huggingface_hub import ModelCard

    info = api.model_info(repo_id)
    data = info.card_data
    if data is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = api.hf_hub_download(repo_id, "README.md", cache_dir=tmp)
            data = ModelCard.load(path).data
    lic = getattr(data, "license", None)
    return lic if isinstance(lic, str) and lic else None


def usage_snippet(base_model: str, adapter_id: str, language: str | None) -> str:
    """Python that loads the base model + this adapter and transcribes `recording.wav`.

    A test runs exactly this text (extracted from the rendered card) against the tiny model. A base
    trained from a local folder is loaded by its Hub id when base_hub_id knows it; otherwise the
    snippet says so and asks for the reader's own copy, never showing the trainer's path.
    """
    lang = "None  # auto-detect" if language is None else json.dumps(language)
    hub_id = base_hub_id(base_model)
    if hub_id is not None:
        base_line = f'base_id = "{hub_id}"'
    else:
        name = Path(base_model).name
        base_line = (f"# The adapter was trained on a local base model folder ({name}), not a Hub repo:\n"
                     f"# put the path of your copy of that same model here.\n"
                     f'base_id = "path/to/{name}"')
    return f'''import math

import soundfile as sf
import torch
from peft import PeftModel
from transformers import AutoProcessor, VoxtralForConditionalGeneration

{base_line}
adapter_id = "{adapter_id}"
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16  # what the adapter was evaluated on (and ~8.7 GiB where fp32 needs ~17.4)

processor = AutoProcessor.from_pretrained(base_id)
model = VoxtralForConditionalGeneration.from_pretrained(base_id, dtype=dtype).to(device)
model = PeftModel.from_pretrained(model, adapter_id).eval()

inputs = processor.apply_transcription_request(
    language={lang}, audio="recording.wav", model_id=base_id
)
inputs = inputs.to(device, dtype=dtype)
max_new_tokens = 32 + math.ceil(15 * sf.info("recording.wav").duration)  # room for fast speech
with torch.no_grad():
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
new_tokens = out[:, inputs["input_ids"].shape[1]:]
print(processor.batch_decode(new_tokens, skip_special_tokens=True)[0])'''


def _cell(value: object) -> str:
    """A markdown table cell: one line, no pipe that would split the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.1f}%"


def _settings_rows(config: dict) -> list[tuple[str, str]]:
    # Scalars only, and never anything that looks like a credential.
    return [(k, _cell(v)) for k, v in sorted(config.items())
            if isinstance(v, (str, int, float, bool)) and "token" not in k.lower()]


def _eval_results(record: RunRecord, model_name: str) -> list:
    from huggingface_hub import EvalResult

    ev = record.eval
    if ev is None:
        return []
    common = dict(task_type=TASK, task_name="Speech recognition",
                  dataset_type=record.dataset if is_repo_id(record.dataset) else "personal-recordings",
                  dataset_name=f"{model_name} held-out takes", dataset_split="test")
    rows = [("wer", "WER", ev.wer_before, BASE_CONFIG), ("cer", "CER", ev.cer_before, BASE_CONFIG),
            ("wer", "WER", ev.wer_after, TUNED_CONFIG), ("cer", "CER", ev.cer_after, TUNED_CONFIG)]
    who = {BASE_CONFIG: "base model, before fine-tuning", TUNED_CONFIG: "fine-tuned, with this adapter"}
    return [EvalResult(**common, metric_type=kind, metric_value=float(value), metric_config=cfg,
                       metric_name=f"{label} ({who[cfg]})")
            for kind, label, value, cfg in rows if value is not None]


def loss_image(record: RunRecord, run_dir: Path | None) -> tuple[str, bytes] | None:
    """(repo path, bytes) of the loss curve: the run's own loss.png if any, else an SVG we draw."""
    if run_dir is not None and (Path(run_dir) / LOSS_PNG).is_file():
        return LOSS_PNG, (Path(run_dir) / LOSS_PNG).read_bytes()
    try:
        return LOSS_SVG, loss_svg(record.loss_history, heldout=record.heldout_loss_history,
                                  best_step=record.best_step).encode()
    except ValueError:
        return None


def build_card(record: RunRecord, repo_id: str, *, license: str, loss_image_path: str | None = None,
               private: bool = True, include_per_take: bool = False) -> ModelCard:
    """Render the card for `repo_id` from a run record. `license` comes from base_model_license().

    Per-take transcripts are left out unless asked for: they are the person's own words.
    """
    from huggingface_hub import ModelCard, ModelCardData

    languages = [lang for lang in record.languages if lang]
    has_dataset = is_repo_id(record.dataset)
    data = ModelCardData(
        model_name=repo_id,
        base_model=base_hub_id(record.base_model),
        library_name="peft",
        pipeline_tag=TASK,
        language=languages or None,
        license=license,
        datasets=[record.dataset] if has_dataset else None,
        tags=list(TAGS),
        eval_results=_eval_results(record, repo_id) or None,
    )
    ev = record.eval
    ev_view = None
    if ev is not None:
        rel = ev.wer_relative_change
        ev_view = dict(n_takes=ev.n_takes, wer_before=_pct(ev.wer_before), cer_before=_pct(ev.cer_before),
                       precision=_precision_note(ev.base_precision),
                       wer_after=_pct(ev.wer_after), cer_after=_pct(ev.cer_after),
                       relative=None if rel is None else f"{100 * rel:+.1f}%",
                       not_better=ev.not_better_sentence())
    per_take = []
    if include_per_take and ev is not None:
        per_take = [{k: _cell(v if v is not None else "") for k, v in vars(t).items()} for t in ev.per_take]
    # A local base folder is shown by the Hub repo it came from, else by its name only: its full path
    # says nothing to a reader, and a link built from it would lead nowhere.
    hub_base = base_hub_id(record.base_model)
    base_name = hub_base or Path(record.base_model).name
    base_url = _model_url(hub_base) if hub_base else None
    base_where = _base_where(record.base_model, hub_base)
    if license == "other" and base_url:
        license_note = f"Inherited from the base model: see the license of [{base_name}]({base_url})."
    elif license == "other":
        license_note = f"Inherited from the base model {base_name} ({base_where}): see its license."
    else:
        license_note = f"`{license}`, inherited from the base model {base_name}."
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        model_id=repo_id,
        base_model=base_name,
        base_url=base_url,
        base_where=base_where,
        dataset=record.dataset,
        dataset_is_repo=has_dataset,
        dataset_url=f"https://huggingface.co/datasets/{record.dataset}",
        language_names=", ".join(LANGUAGE_NAMES.get(c, c) for c in languages) or "not recorded",
        n_train_takes=record.n_train_takes,
        n_test_takes=record.n_test_takes,
        train_minutes=f"{record.train_minutes:.1f}",
        steps_done=record.steps_done,
        steps_total=record.steps_total,
        dataset_revision=record.dataset_revision,
        best_step=record.best_step,
        stopped_early=record.stopped_early,
        heldout_epochs=len(record.heldout_loss_history),
        settings=_settings_rows(record.config),
        adapted=describe_adaptation(int(record.config.get("adapt_encoder") or 0)),
        eval=ev_view,
        per_take=per_take,
        loss_image=loss_image_path,
        snippet=usage_snippet(record.base_model, repo_id, languages[0] if languages else None),
        private_hint=private,
        license_note=license_note,
    )


def _base_where(base_model: str, hub_base: str | None) -> str | None:
    """Where the base came from, when it is not simply the Hub repo it names."""
    if hub_base == base_model:
        return None
    if hub_base:
        return "trained from a local copy"
    return "a local folder, not a Hub repo"


def _precision_note(precision: str | None) -> str | None:
    """Which base the numbers were measured on, said against what the demo and the snippet load."""
    from voxspace.model import SERVED_PRECISION

    if precision is None:
        return None
    if precision == SERVED_PRECISION:
        return (f"Measured with the base model loaded in {precision}, as the demo Space and the snippet "
                "below load it: the numbers describe the model you get.")
    return (f"Measured with the base model loaded in {precision}; the demo Space and the snippet below load "
            f"it in {SERVED_PRECISION}, so their transcripts can differ slightly from these.")


def _model_url(model_id: str) -> str:
    return f"https://huggingface.co/{model_id}"


def card_files(run_dir: Path, repo_id: str, *, license: str, private: bool = True,
               include_per_take: bool = False) -> CardFiles:
    """README.md + loss image for the run in `run_dir`, ready to commit to `repo_id`."""
    record = RunRecord.load(run_dir)
    image = loss_image(record, run_dir)
    card = build_card(record, repo_id, license=license, loss_image_path=image[0] if image else None,
                      private=private, include_per_take=include_per_take)
    return CardFiles(readme=str(card), images=dict([image]) if image else {})


def preview_card(run_dir: Path, repo_id: str, *, license: str | None = None, api: HfApi | None = None,
                 private: bool = True, include_per_take: bool = False) -> str:
    """The card's markdown exactly as publish_adapter would push it (for the UI's preview)."""
    record = RunRecord.load(run_dir)
    lic = license or base_model_license(record.base_model, api)
    return card_files(run_dir, repo_id, license=lic, private=private,
                      include_per_take=include_per_take).readme


def extract_snippet(card_text: str) -> str:
    """The first ```python block of a card: what a reader would copy."""
    m = re.search(r"```python\n(.*?)\n```", card_text, re.S)
    if not m:
        raise ValueError("the card has no python code block")
    return m.group(1)
