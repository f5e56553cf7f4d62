"""The demo_template app, run as the Space would run it (its own process, configured by env vars),
against the tiny base + adapter served by the local Hub-API server, driven through gradio_client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from voxspace.demo import TEMPLATE_DIR

pytestmark = pytest.mark.slow
MAX_NEW_TOKENS = 24  # the tiny random model never stops by itself: keep its babble short


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def demo_app(hub, tmp_path: Path, **env_vars: str) -> Iterator[tuple[str, Path]]:
    """Start demo_template/app.py; yield (url, log path); stop it (by its own pid) afterwards."""
    port = _free_port()
    log = tmp_path / f"demo-{port}.log"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "ADAPTER_READ_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / f"hf-home-{port}"), HF_HUB_DISABLE_TELEMETRY="1",
               GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), MAX_NEW_TOKENS=str(MAX_NEW_TOKENS), **env_vars)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=TEMPLATE_DIR, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, f"the demo exited early:\n{log.read_text()[-3000:]}"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"the demo did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _expected(tiny_model_dir: Path, tiny_adapter_dir: Path, wav: Path) -> tuple[str, str]:
    """(fine-tuned, base) transcriptions computed here with the same weights, for comparison."""
    import numpy as np
    import soundfile as sf
    import soxr
    import torch
    from peft import PeftModel
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    base = VoxtralForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base, tiny_adapter_dir).eval()
    pcm, rate = sf.read(wav, dtype="int16")  # what gr.Audio(type="numpy") hands the app
    x = soxr.resample(pcm.astype(np.float32) / 32767, rate, 16000).astype(np.float32)
    inputs = processor.apply_transcription_request(language="en", audio=x, sampling_rate=16000,
                                                   format="wav", model_id="x").to(dtype=torch.bfloat16)
    n = inputs["input_ids"].shape[1]

    def run() -> str:
        ids = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        return processor.batch_decode(ids[:, n:], skip_special_tokens=True)[0].strip()

    with torch.inference_mode():
        tuned = run()
        with model.disable_adapter():
            base = run()
    return tuned, base


def _component(config: dict, elem_id: str) -> dict:
    found = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(found) == 1, elem_id
    return found[0]


def test_demo_transcribes_with_the_private_adapter_beside_the_base(hub, hub_models, tmp_path, speech_wav,
                                                                   tiny_model_dir, tiny_adapter_dir):
    import httpx
    import numpy as np
    import soundfile as sf
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    read_tok = "hf_demo_read_token_for_test"
    hub.add_user(read_tok, "alice", role="read")
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.zeros(4 * 16000, dtype=np.int16), 16000)
    with demo_app(hub, tmp_path, ADAPTER_ID=hub_models["private_adapter"], BASE_MODEL_ID=hub_models["base"],
                  ADAPTER_READ_TOKEN=read_tok, MAX_SECONDS="3", TRAINED_LANGUAGES="xx, FR,en") as (url, log):
        language = _component(httpx.get(url + "config", timeout=30).json(), "language")
        client = Client(url, verbose=False)
        tuned, base = client.predict(handle_file(str(speech_wav)), "en", api_name="/transcribe")
        auto_tuned, _ = client.predict(handle_file(str(speech_wav)), "auto", api_name="/transcribe")
        with pytest.raises(AppError, match="longer than 3 s"):
            client.predict(handle_file(str(long_wav)), "en", api_name="/transcribe")
    # the trained languages lead the list and the first is the default; unknown codes are dropped
    assert language["value"] == "fr"
    assert [c[1] for c in language["choices"][:3]] == ["auto", "fr", "en"]
    assert language["choices"][1][0] == "French (trained)"
    assert (tuned, base) == _expected(tiny_model_dir, tiny_adapter_dir, speech_wav)  # bf16, as on a GPU
    assert tuned and tuned != base  # the adapter really is applied to the fine-tuned side
    assert isinstance(auto_tuned, str)
    assert read_tok not in log.read_text()


def test_demo_with_a_missing_adapter_shows_the_error_and_transcribes_nothing(hub, hub_models, tmp_path,
                                                                            speech_wav):
    import httpx
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    with demo_app(hub, tmp_path, ADAPTER_ID="alice/no-such-adapter", BASE_MODEL_ID=hub_models["base"]) as (
            url, _):
        page = httpx.get(url + "config", timeout=30).text
        assert "The fine-tuned model is not available" in page and "alice/no-such-adapter" in page
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="Could not load the fine-tuned adapter") as e:
            client.predict(handle_file(str(speech_wav)), "en", api_name="/transcribe")
    assert "ADAPTER_READ_TOKEN" in str(e.value)  # tells the owner how to fix a private adapter


def test_demo_serves_an_adapter_that_changes_the_audio_encoder(hub, hub_models, hub_tokens, tmp_path,
                                                               speech_wav, tiny_model_dir):
    """An adapter made with the encoder option (issue 15): only its encoder and projector LoRA are
    non-zero, so a transcription that differs from the base's proves the demo applied them."""
    import torch
    from gradio_client import Client, handle_file
    from huggingface_hub import HfApi
    from transformers import VoxtralForConditionalGeneration

    from voxspace.model import LoraSettings, attach_lora

    torch.manual_seed(0)
    model = attach_lora(VoxtralForConditionalGeneration.from_pretrained(tiny_model_dir),
                        LoraSettings(rank=4, alpha=8, encoder_layers=1))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name and ("audio_tower" in name or "multi_modal_projector" in name):
                p.normal_(0, 0.5)
    folder = tmp_path / "encoder-adapter"
    model.save_pretrained(folder)
    repo = "alice/publish-tiny-encoder-adapter"
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=folder)
    expected = _expected(tiny_model_dir, folder, speech_wav)
    assert expected[0] != expected[1]  # the encoder LoRA alone changes what is transcribed
    with demo_app(hub, tmp_path, ADAPTER_ID=repo, BASE_MODEL_ID=hub_models["base"]) as (url, _):
        client = Client(url, verbose=False)
        served = client.predict(handle_file(str(speech_wav)), "en", api_name="/transcribe")
    assert tuple(served) == expected
