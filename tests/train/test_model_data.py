"""Model loading, LoRA placement, takes -> examples -> batches, and the split checks."""

from __future__ import annotations

import pytest
import torch

from tests.train.conftest import make_take
from voxspace.data import IGNORE, TranscriptionCollator, load_takes, split_takes
from voxspace.errors import NotEnoughTakes, VoxSpaceError
from voxspace.layout import read_folder
from voxspace.model import LoraSettings, ModelConfig, attach_lora, audio_module_names, load_base

AUDIO_TOKEN, EOS, PAD = 24, 2, 11


def test_lora_sits_only_in_the_language_model(base):
    model = attach_lora(base[0], LoraSettings(rank=4, alpha=8))
    audio = set(audio_module_names(model))
    assert audio, "the audio tower must be there to be checked"
    lora_modules = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert lora_modules and all(".language_model.layers." in n for n in lora_modules)
    assert not [n for n in lora_modules if n in audio]
    # every projection of every LM layer is adapted: q k v o gate up down x 2 layers
    assert len(lora_modules) == 7 * 2
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_collator_prompts_masks_eos_language_and_padding(tmp_path, base):
    _, processor = base
    for seq, (text, lang) in enumerate([("hello world", "en"), ("bonjour", "fr"), ("open the door", "")]):
        make_take(tmp_path, seq, text, language=lang, split="train")
    make_take(tmp_path, 3, "a long take", language="en", split="train", pad_to_s=35.0)
    takes = read_folder(tmp_path)
    collate = TranscriptionCollator(processor)
    examples = [collate.encode(t) for t in takes]
    tok = processor.tokenizer

    for take, ex in zip(takes, examples, strict=True):
        target = ex.input_ids[ex.prompt_len :]
        assert target[-1].item() == EOS, "the transcript must end with EOS"
        assert tok.decode(target[:-1].tolist()) == take.take.text
        assert torch.equal(ex.labels[ex.prompt_len :], target)
        assert (ex.labels[: ex.prompt_len] == IGNORE).all()
        prompt = tok.decode(ex.input_ids[: ex.prompt_len].tolist())
        if take.take.language:
            assert f"lang:{take.take.language}" in prompt  # the take's own language, never a forced "en"
        else:
            assert "lang:" not in prompt  # None: Voxtral auto-detects

    long = examples[3]
    assert long.input_features.shape[0] == 2, "a 35 s take spans two 30 s chunks"
    assert int((long.input_ids == AUDIO_TOKEN).sum()) == 750

    batch = collate(examples)
    widths = [len(e) for e in examples]
    assert batch["input_ids"].shape == (4, max(widths))
    assert batch["input_features"].shape[0] == 1 + 1 + 1 + 2  # chunks concatenated per take
    assert batch["chunks"] == [1, 1, 1, 2]
    short = widths.index(min(widths))
    n = widths[short]
    assert (batch["input_ids"][short, n:] == PAD).all()  # right padding for training
    assert (batch["labels"][short, n:] == IGNORE).all()
    assert batch["attention_mask"][short].sum() == n

    gen = collate.prompt_batch(examples)  # left padding for generation
    assert (gen["attention_mask"][:, -1] == 1).all()
    assert gen["input_ids"][short, 0].item() == PAD


def test_split_needs_enough_takes_and_says_how_many_more(tmp_path):
    with pytest.raises(NotEnoughTakes, match="no takes"):
        split_takes([])
    make_take(tmp_path, 0, "hello world")  # train
    make_take(tmp_path, 1, "good morning")  # test
    with pytest.raises(NotEnoughTakes) as e:
        split_takes(read_folder(tmp_path))
    assert "found 1 and 1" in e.value.user_message
    assert "Record 1 more take." in e.value.user_message
    make_take(tmp_path, 2, "open the door")
    train, test = split_takes(read_folder(tmp_path))
    assert [t.take.seq for t in train] == [0, 2] and [t.take.seq for t in test] == [1]


def test_takes_and_base_model_load_by_repo_id_from_the_hub(
    hub, hub_tokens, takes_dir, tiny_voxtral_dir, tmp_path
):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo("alice/train-recordings", repo_type="dataset", private=True)
    api.upload_folder(repo_id="alice/train-recordings", repo_type="dataset", folder_path=str(takes_dir))
    api.create_repo("alice/train-base-voxtral", private=True)
    api.upload_folder(repo_id="alice/train-base-voxtral", folder_path=str(tiny_voxtral_dir))

    takes = load_takes(
        "alice/train-recordings", token=hub_tokens["alice"], endpoint=hub.url, cache_dir=tmp_path / "a"
    )
    assert [t.take.take_id for t in takes] == [t.take.take_id for t in read_folder(takes_dir)]
    assert all(t.wav.is_file() for t in takes)
    with pytest.raises(VoxSpaceError) as e:  # another user may not read alice's private takes
        load_takes(
            "alice/train-recordings", token=hub_tokens["bob"], endpoint=hub.url, cache_dir=tmp_path / "b"
        )
    assert "alice/train-recordings" in e.value.user_message

    model, processor = load_base(
        ModelConfig(
            "alice/train-base-voxtral",
            precision="fp32",
            token=hub_tokens["alice"],
            cache_dir=str(tmp_path / "m"),
        )
    )
    assert type(model).__name__ == "VoxtralForConditionalGeneration"
    assert processor.tokenizer.eos_token_id == EOS
