"""The tiny offline Voxtral loads through from_pretrained and behaves like the real one's shapes."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_tiny_model_round_trips_through_from_pretrained(tmp_path):
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    from voxspace.devtools.tiny_voxtral import build

    build(tmp_path / "tiny")
    processor = AutoProcessor.from_pretrained(tmp_path / "tiny")
    model = VoxtralForConditionalGeneration.from_pretrained(tmp_path / "tiny")
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    enc = processor.apply_transcription_request(language="en", audio=audio, sampling_rate=16000,
                                                format="wav", model_id="tiny")
    assert int((enc["input_ids"] == 24).sum()) == 375  # one 30 s chunk
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
