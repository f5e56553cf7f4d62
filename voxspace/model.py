"""Load the Voxtral base (8-bit, bf16 or fp32) and attach LoRA to its language model only.

    model, processor = load_base(ModelConfig("mistralai/Voxtral-Mini-3B-2507", precision="8bit"))
    model = attach_lora(model, LoraSettings(rank=16, alpha=32))

By default the audio tower and projector stay frozen and un-adapted: LoRA anywhere in the encoder
forces a backward pass through every encoder layer above it (FACTS "Where a Voxtral LoRA step spends
its work"). For speech far from what Voxtral heard in training, `LoraSettings.encoder_layers = N`
also adapts the top N encoder layers (attention + MLP) and the projector (issue 15): the frozen
layers below them are then cached per take instead (voxspace.encoder_cache), so the extra cost is
the top N layers only.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxspace.errors import BadHyperparameter, ModelUnavailable
from voxspace.settings import DEFAULT_BASE_MODEL

if TYPE_CHECKING:  # heavy imports stay lazy: recording paths import nothing from torch
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("8bit", "bf16", "fp32")
# What the demo Space and the model card's snippet load (bf16 on the GPU and the CPU alike), so
# the evaluation measures this too: the WER table describes the model people get.
SERVED_PRECISION = "bf16"
# A bare ["q_proj", ...] also matches the Whisper encoder's attention; this regex cannot.
LM_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
# What LoRA wraps. "attention_everywhere" is the recipe this project replaces (a plain list that
# also adapts the audio encoder); kept only so bench/train_speed.py can measure what it costs.
LORA_TARGETS: dict[str, str | list[str]] = {
    "language_model": LM_LORA_TARGETS,
    "attention_everywhere": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
# The encoder option: attention and MLP of an encoder layer, and both projector matrices.
ENCODER_LAYER_MODULES = r"(self_attn\.(q|k|v|out)_proj|fc1|fc2)"
PROJECTOR_MODULES = r".*multi_modal_projector\.linear_(1|2)"
MAX_ENCODER_LAYERS = 32  # Voxtral-Mini-3B's audio encoder; a smaller model is checked when LoRA is attached
# Full module names: bitsandbytes matches "audio_tower" against nothing (FACTS "8-bit").
INT8_SKIP_MODULES = ["model.audio_tower", "model.multi_modal_projector", "lm_head"]


@dataclass
class ModelConfig:
    """Which base model to load and how. `base_model` is a Hub repo id or a local folder."""

    base_model: str = DEFAULT_BASE_MODEL
    precision: str = "8bit"  # "8bit" | "bf16" | "fp32"
    device: str | None = None  # None: "cuda" when available, else "cpu"
    revision: str | None = None
    token: str | None = field(default=None, repr=False)
    cache_dir: str | None = None  # per-visitor Hub cache (FACTS: a shared cache leaks private data)
    local_files_only: bool = False  # set by check_base_model when the Hub is down but a copy is cached

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise BadHyperparameter(
                f"Precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}."
            )

    def resolved_device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: str = "language_model"  # a key of LORA_TARGETS
    encoder_layers: int = 0  # also adapt the top N audio-encoder layers and the projector


def served_config(cfg: ModelConfig) -> ModelConfig:
    """`cfg` as the demo serves it: the same base model in SERVED_PRECISION."""
    return dataclasses.replace(cfg, precision=SERVED_PRECISION)


def precision_of(model: Any) -> str:
    """The precision a (PEFT-wrapped) model was really loaded in: "8bit", "bf16", "fp32", ..."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "is_loaded_in_8bit", False):
        return "8bit"
    names = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float16: "fp16"}
    return names.get(base.dtype, str(base.dtype).removeprefix("torch."))


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of activations and non-quantised weights (8-bit computes in bf16)."""
    import torch

    return torch.float32 if precision == "fp32" else torch.bfloat16


def load_base(cfg: ModelConfig) -> tuple[Any, Any]:
    """Load (model, processor), frozen, in eval mode, on the configured device."""
    return load_model(cfg), load_processor(cfg)


def load_processor(cfg: ModelConfig) -> Any:
    """The processor alone (tokenizer + feature extractor): enough to encode takes on the CPU."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        cfg.base_model, revision=cfg.revision, token=cfg.token, cache_dir=cfg.cache_dir,
        local_files_only=cfg.local_files_only,
    )


def load_model(cfg: ModelConfig) -> Any:
    """The model half of load_base (needs no tokenizer package: bench/train_speed.py --full-size)."""
    from transformers import BitsAndBytesConfig, VoxtralForConditionalGeneration

    cfg.validate()
    device = cfg.resolved_device()
    kw: dict[str, Any] = dict(
        revision=cfg.revision, token=cfg.token, cache_dir=cfg.cache_dir, dtype=compute_dtype(cfg.precision),
        local_files_only=cfg.local_files_only,
    )
    if cfg.precision == "8bit":
        quiet_int8_cast_warning()
        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_skip_modules=INT8_SKIP_MODULES
        )
        kw["device_map"] = {"": device}
    model = VoxtralForConditionalGeneration.from_pretrained(cfg.base_model, **kw)
    if cfg.precision != "8bit":
        model.to(device)
    model.requires_grad_(False)
    model.eval()
    return model


_PATH_LIKE = re.compile(r"^(/|~|\.{1,2}/)|/.*/")  # absolute, home, relative, or more than one slash


def model_fix(in_space: bool) -> str:
    """What to do about a base model that cannot be had, where the person is."""
    if in_space:
        return ("To use another model, set the variable VOXSPACE_BASE_MODEL in this Space's settings "
                "and restart it.")
    return ("To use a copy you already have, set VOXSPACE_BASE_MODEL (or --base-model on the command "
            "line) to its folder.")


def check_base_model(cfg: ModelConfig, *, endpoint: str | None = None, in_space: bool = False) -> None:
    """Make sure the base model can be loaded before any time is spent: a folder must hold a
    config.json; a Hub id must exist, be readable with cfg.token and answer, or be in the cache.

    One metadata call (no retries) and one small download (config.json): a missing model fails in
    well under a second instead of after the loader's retries. Raises ModelUnavailable with the
    sentence to show; when the Hub is down but a copy is cached, sets cfg.local_files_only.
    """
    from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from voxspace.hub import is_retryable

    name, fix = cfg.base_model, model_fix(in_space)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"The folder {name} holds no model (there is no config.json in it). {fix}")
        return
    if _PATH_LIKE.search(name) or name.count("/") != 1:
        raise ModelUnavailable(f"The base model {name} is not a folder on this machine, nor a Hub model id "
                               f"(owner/name). {fix}")
    try:
        HfApi(endpoint=endpoint, token=cfg.token).model_info(name, revision=cfg.revision)
        hf_hub_download(name, "config.json", revision=cfg.revision, token=cfg.token, cache_dir=cfg.cache_dir,
                        endpoint=endpoint)
    except GatedRepoError as e:
        signed = "the account whose token VoxSpace uses" if cfg.token else "your account, then sign in"
        raise ModelUnavailable(f"The base model {name} is gated: open its page on the Hub, accept its terms "
                               f"with {signed}, and try again. {fix}", detail=type(e).__name__) from e
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ModelUnavailable(f"The base model {name} was not found on the Hugging Face Hub (a typo in its "
                               f"id, or a private repo). {fix}", detail=type(e).__name__) from e
    except LocalEntryNotFoundError as e:
        raise _offline(name, fix, e) from e
    except EntryNotFoundError as e:
        raise ModelUnavailable(f"{name} is not a Voxtral model: it has no config.json. {fix}",
                               detail=type(e).__name__) from e
    except Exception as e:
        if not is_retryable(e):
            raise
        cached = try_to_load_from_cache(name, "config.json", cache_dir=cfg.cache_dir, revision=cfg.revision)
        if not isinstance(cached, str):
            raise _offline(name, fix, e) from e
        log.warning("the Hub did not answer (%s); using the cached copy of %s", type(e).__name__, name)
        cfg.local_files_only = True


def _offline(name: str, fix: str, e: BaseException) -> ModelUnavailable:
    return ModelUnavailable(f"The base model {name} could not be downloaded: the Hugging Face Hub cannot be "
                            f"reached (no network?) and there is no copy on this machine. {fix}",
                            detail=type(e).__name__)


class _Once(logging.Filter):
    """Lets a message through the first time only."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        first, self.seen = not self.seen, True
        return first


def quiet_int8_cast_warning() -> None:
    """bitsandbytes logs "inputs will be cast ... to float16" on EVERY 8-bit matmul with bf16
    inputs: 210 lines per forward at full size, per generated token too. Keep the first one."""
    bnb_log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _Once) for f in bnb_log.filters):
        bnb_log.addFilter(_Once("MatMul8bitLt: inputs will be cast"))


def encoder_layer_count(model: Any) -> int:
    """How many layers the model's audio encoder has (32 for Voxtral-Mini-3B)."""
    from voxspace.encoder_cache import voxtral_of

    return len(voxtral_of(model).model.audio_tower.layers)


def lora_target_regex(lora: LoraSettings, n_encoder_layers: int) -> str | list[str]:
    """peft's target_modules: the LM's projections, plus (encoder option) the top N encoder layers'
    attention and MLP and the projector. One regex, so a reloaded adapter_config.json (the demo, a
    resumed run) wraps exactly the same modules."""
    targets = LORA_TARGETS[lora.targets]
    n = lora.encoder_layers
    if not n:
        return targets
    if n > n_encoder_layers:
        raise BadHyperparameter(
            f"This model's audio encoder has {n_encoder_layers} layers: adapt at most {n_encoder_layers} "
            f"(asked for {n})."
        )
    if lora.targets != "language_model":
        raise BadHyperparameter("The encoder option adds to the language-model LoRA only.")
    top = "|".join(str(i) for i in range(n_encoder_layers - n, n_encoder_layers))
    encoder = rf".*audio_tower\.layers\.({top})\.{ENCODER_LAYER_MODULES}"
    return f"{targets}|{encoder}|{PROJECTOR_MODULES}"


def attach_lora(model: Any, lora: LoraSettings) -> Any:
    """Wrap `model` in a PeftModel whose only trainable parameters are LoRA weights: the LM's, and
    with `lora.encoder_layers` also the top encoder layers' and the projector's."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_regex(lora, encoder_layer_count(model)),
        bias="none",
    )
    return get_peft_model(model, config)


def describe_adaptation(encoder_layers: int, n_encoder_layers: int | None = None) -> str:
    """Which parts of Voxtral an adapter changes, in words (model card, run summary)."""
    if not encoder_layers:
        return "the language model only (the audio encoder and projector are unchanged)"
    of = f" of {n_encoder_layers}" if n_encoder_layers else ""
    layers = "layer" if encoder_layers == 1 else "layers"
    return (
        f"the language model, the top {encoder_layers}{of} audio-encoder {layers} (attention and MLP) "
        "and the audio projector"
    )


def detach_lora(model: Any) -> Any:
    """Give back the bare base model (LoRA layers removed) so the next run can attach its own."""
    from peft import PeftModel

    return model.unload() if isinstance(model, PeftModel) else model


def audio_module_names(model: Any) -> list[str]:
    """Names of every module in the audio tower or projector (used to prove LoRA stays out)."""
    return [n for n, _ in model.named_modules() if "audio_tower" in n or "multi_modal_projector" in n]
