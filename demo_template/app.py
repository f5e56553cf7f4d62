"""A demo of one person's fine-tuned Voxtral: their adapter's transcription beside the base model's.

Created by VoxSpace and uploaded as-is into the owner's Space; it imports nothing from VoxSpace.
Configured by Space variables (and one optional secret):
    ADAPTER_ID           the LoRA adapter repo, e.g. "me/voxtral-my-voice"
    BASE_MODEL_ID        the base model it was trained on, e.g. "mistralai/Voxtral-Mini-3B-2507"
    ADAPTER_READ_TOKEN   (secret, optional) a read-only token, needed only if the adapter is private
    TRAINED_LANGUAGES    (optional) the languages the adapter was trained on, e.g. "hi,en": the first
                         is the default choice (the prompt the adapter knows); Auto-detect stays offered
    MAX_NEW_TOKENS       (optional) a cap on a transcription's tokens (default: 32 + 15 per second of
                         audio, the rule VoxSpace's evaluation uses, so long recordings are not cut)
    MAX_SECONDS          (optional) longest recording accepted, in seconds (default 120)

The model is loaded in bf16 on the GPU and on the CPU alike: it is what VoxSpace measured the
adapter on, and the 3B model takes ~8.7 GiB in bf16 where fp32 would take ~17.4 GiB, more than a
free CPU Space has.

If the adapter cannot be loaded, the page says why and transcribes nothing: it never passes the
base model off as the fine-tuned one.

Run locally: ADAPTER_ID=... BASE_MODEL_ID=... python app.py
"""

import spaces  # noqa: I001  (ZeroGPU: must be imported before torch)

import os
import threading

import gradio as gr
import numpy as np
import soxr
import torch
from peft import PeftModel
from transformers import AutoProcessor, VoxtralForConditionalGeneration

ADAPTER_ID = os.environ.get("ADAPTER_ID", "").strip()
BASE_MODEL_ID = os.environ.get("BASE_MODEL_ID", "mistralai/Voxtral-Mini-3B-2507").strip()
READ_TOKEN = os.environ.get("ADAPTER_READ_TOKEN") or None
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16  # on the CPU too: see the module docstring
SAMPLE_RATE = 16_000
MAX_SECONDS = int(os.environ.get("MAX_SECONDS", "120"))  # one ZeroGPU call must finish in time
_MODEL_LOCK = threading.Lock()
MAX_NEW_TOKENS = int(os.environ["MAX_NEW_TOKENS"]) if os.environ.get("MAX_NEW_TOKENS") else None
TOKENS_BASE, TOKENS_PER_SECOND = 32, 15  # voxspace.evaluate.token_limit: the same rule
AUTO = "auto"
NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese", "hi": "Hindi", "de": "German",
         "nl": "Dutch", "it": "Italian"}


def trained_languages(value: str) -> list[str]:
    """The known codes in TRAINED_LANGUAGES, in order ("hi, EN,xx" -> ["hi", "en"])."""
    codes = [c.strip().lower() for c in value.split(",")]
    return [c for c in dict.fromkeys(codes) if c in NAMES]


TRAINED = trained_languages(os.environ.get("TRAINED_LANGUAGES", ""))
DEFAULT_LANGUAGE = TRAINED[0] if TRAINED else AUTO
ORDER = TRAINED + [c for c in NAMES if c not in TRAINED]  # the trained languages first, in their order
LANGUAGES = [("Auto-detect", AUTO)] + [
    (f"{NAMES[c]} (trained)" if c in TRAINED else NAMES[c], c) for c in ORDER
]


def token_limit(n_samples: int) -> int:
    limit = TOKENS_BASE + -(-TOKENS_PER_SECOND * n_samples // SAMPLE_RATE)
    return limit if MAX_NEW_TOKENS is None else min(limit, MAX_NEW_TOKENS)


def _first_line(err: Exception) -> str:
    # The Hub client's messages never contain the token; one line is enough for the page.
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _check_adapter_readable() -> str | None:
    """Ask the Hub first, so 'missing' and 'private' get a sentence that says what to do."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if os.path.isdir(ADAPTER_ID):  # a local folder (running the demo on your own machine)
        return None
    try:
        model_info(ADAPTER_ID, token=READ_TOKEN)
    except (RepositoryNotFoundError, GatedRepoError):
        return (f"Could not load the fine-tuned adapter `{ADAPTER_ID}`: it does not exist, or it is private "
                "and this Space cannot read it. Make the adapter public, or add a read-only token as the "
                "Space secret ADAPTER_READ_TOKEN, then restart the Space.")
    except Exception as e:
        return f"Could not load the fine-tuned adapter `{ADAPTER_ID}`: {_first_line(e)}"
    return None


def load() -> tuple[object, object, str | None]:
    """(processor, model with the adapter, error). On error the model is None: nothing is served."""
    if not ADAPTER_ID:
        return None, None, "This demo has no adapter configured: set the ADAPTER_ID variable."
    if error := _check_adapter_readable():
        return None, None, error
    try:
        processor = AutoProcessor.from_pretrained(BASE_MODEL_ID, token=READ_TOKEN)
        base = VoxtralForConditionalGeneration.from_pretrained(BASE_MODEL_ID, dtype=DTYPE, token=READ_TOKEN)
    except Exception as e:
        return None, None, f"Could not load the base model `{BASE_MODEL_ID}`: {_first_line(e)}"
    try:
        model = PeftModel.from_pretrained(base, ADAPTER_ID, token=READ_TOKEN)
    except Exception as e:
        return None, None, f"Could not load the fine-tuned adapter `{ADAPTER_ID}`: {_first_line(e)}"
    return processor, model.to(DEVICE).eval(), None


PROCESSOR, MODEL, LOAD_ERROR = load()
if LOAD_ERROR:
    print(f"[demo] {LOAD_ERROR}", flush=True)


def _to_16k_mono(audio: tuple[int, np.ndarray]) -> np.ndarray:
    """Gradio's (rate, samples) -> float32 mono at 16 kHz, what Voxtral's processor expects."""
    rate, samples = audio
    x = np.asarray(samples)
    scale = np.iinfo(x.dtype).max if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float32) / scale
    if x.ndim == 2:  # (samples, channels)
        x = x.mean(axis=1)
    return soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else x


def _generate(inputs, max_new_tokens: int) -> str:
    out = MODEL.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return PROCESSOR.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()


@spaces.GPU(duration=60)
def transcribe(audio: tuple[int, np.ndarray] | None, language: str) -> tuple[str, str]:
    """Transcribe one recording twice: with the adapter, then with it switched off (the base model)."""
    if LOAD_ERROR:
        raise gr.Error(LOAD_ERROR)
    if audio is None:
        raise gr.Error("Record or upload some audio first.")
    samples = _to_16k_mono(audio)
    if len(samples) > MAX_SECONDS * SAMPLE_RATE:
        raise gr.Error(f"That recording is longer than {MAX_SECONDS} s: try a shorter one.")
    inputs = PROCESSOR.apply_transcription_request(
        language=None if language in (AUTO, None, "") else language, audio=samples,
        sampling_rate=SAMPLE_RATE, format="wav", model_id=BASE_MODEL_ID)
    inputs = inputs.to(DEVICE, dtype=DTYPE)
    limit = token_limit(len(samples))
    # The adapter is switched off and on for the whole model: one request at a time, so a
    # concurrent one can never read base-model output as the fine-tuned transcription.
    with _MODEL_LOCK, torch.inference_mode():
        tuned = _generate(inputs, limit)
        with MODEL.disable_adapter():
            base = _generate(inputs, limit)
    return tuned, base


with gr.Blocks(title=f"{ADAPTER_ID or 'Voxtral'} demo") as demo:
    gr.Markdown(f"# Personal speech recognition: `{ADAPTER_ID or 'not configured'}`\n"
                f"A Voxtral adapter fine-tuned on one person's voice, compared with the base model "
                f"`{BASE_MODEL_ID}` on the same audio.")
    if LOAD_ERROR:
        gr.Markdown(f"**The fine-tuned model is not available.** {LOAD_ERROR}", elem_id="load-error")
    with gr.Row():
        audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="Speech")
        language = gr.Dropdown(LANGUAGES, value=DEFAULT_LANGUAGE, label="Language", elem_id="language",
                               info="The adapter knows best the language it was trained on; Auto-detect "
                                    "lets the model decide.")
    button = gr.Button("Transcribe", variant="primary")
    with gr.Row():
        tuned_box = gr.Textbox(label=f"Fine-tuned ({ADAPTER_ID or 'not loaded'})", lines=4)
        base_box = gr.Textbox(label=f"Base model ({BASE_MODEL_ID})", lines=4)
    button.click(transcribe, [audio, language], [tuned_box, base_box], api_name="transcribe",
                 concurrency_limit=1)

if __name__ == "__main__":
    demo.queue(max_size=16).launch()
