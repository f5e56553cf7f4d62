"""What the WER/CER numbers count: normalisation per language, and how long a transcript may grow."""

from __future__ import annotations

import unicodedata

import pytest

from tests.train.conftest import make_take
from voxspace.evaluate import error_rates, generation_limit, normalise, token_limit, transcribe

HINDI = "सुप्रभात, क्या आपको रात में अच्छी नींद आई?"  # 8 words

# (language, reference, the same words written differently, a hypothesis with errors, its WER)
PAIRS = [
    ("en", "Hello, world! It's raining.", "hello world it is raining", "hello word it is raining", 1 / 5),
    ("es", "¿Dónde está la estación?", "dónde está la estación", "donde está la estacion", 2 / 4),
    ("fr", "L'été est là !", "l'été est là", "l'été et là", 1 / 4),
    ("pt", "Não, obrigado! Até amanhã.", "não obrigado até amanhã", "nao obrigado até amanhã", 1 / 4),
    ("hi", HINDI, "सुप्रभात क्या आपको रात में अच्छी नींद आई", "सुप्रभात क्या आपकी रात मे अच्छि नींद आई", 3 / 8),
    ("de", "Grüße aus München.", "grüße aus münchen", "grusse aus münchen", 1 / 3),
    ("nl", "Één café, alstublieft.", "één café alstublieft", "een café alstublieft", 1 / 3),
    ("it", "Perché è così?", "perché è così", "perche è così", 1 / 3),
]


@pytest.mark.parametrize(("lang", "ref", "same", "wrong", "wer"), PAIRS, ids=[p[0] for p in PAIRS])
def test_each_language_ignores_case_and_punctuation_but_counts_misspelt_letters(lang, ref, same, wrong, wer):
    assert error_rates([ref], [same], [lang]) == (0.0, 0.0)
    got_wer, got_cer = error_rates([ref], [wrong], [lang])
    assert got_wer == pytest.approx(wer)
    assert 0 < got_cer < got_wer


def test_hindi_words_keep_their_vowel_signs():
    """Whisper's BasicTextNormalizer made 15 fragments of these 8 words (openai/whisper#2849)."""
    assert normalise(HINDI, "hi").split() == ["सुप्रभात", "क्या", "आपको", "रात", "में", "अच्छी", "नींद", "आई"]
    # 4 of 7 words with a wrong vowel sign: 4/7 WER, where the old normaliser gave 9%
    ref = "क्या आपको रात में अच्छी नींद आई"
    hyp = "क्या आपकी रात मे अच्छि नीद आई"
    assert error_rates([ref], [hyp], ["hi"])[0] == pytest.approx(4 / 7)


def test_composed_and_decomposed_accents_are_the_same_word():
    decomposed = unicodedata.normalize("NFD", "Où est le café ?")
    assert normalise(decomposed, "fr") == normalise("où est le café", "fr") == "où est le café"
    assert error_rates([decomposed], ["où est le café"], [None]) == (0.0, 0.0)


def test_bracketed_asides_and_empty_references():
    assert normalise("Perché (ride) è così? [rumore]", "it") == "perché è così"
    assert error_rates(["", "ciao"], ["anything", "ciao"], ["it", "it"]) == (0.0, 0.0)
    assert error_rates([""], ["anything"], ["it"]) == (0.0, 0.0)  # nothing to score


def test_token_limit_follows_the_duration():
    assert token_limit(2.0) < token_limit(10.0) < token_limit(30.0)
    assert token_limit(30.0) >= 2 * 130  # twice the ~130 tokens of 30 s of Hindi speech
    assert token_limit(None) == token_limit(0.0) == token_limit(30.0)  # no duration: one 30 s chunk


def test_a_30s_take_is_given_room_for_its_whole_reference_and_a_short_one_is_not(tmp_path, base, monkeypatch):
    """The limit reaches generate(): a 30 s take with a long Hindi reference gets at least the tokens its
    reference takes with this (byte-level, so worst-case) tokenizer; a 1 s take gets far fewer."""
    from voxspace.data import TranscriptionCollator
    from voxspace.layout import read_folder

    model, processor = base
    long_text = " ".join([HINDI] * 6)
    make_take(tmp_path, 0, long_text, language="hi", split="test", pad_to_s=30)
    make_take(tmp_path, 1, "hi", split="test")
    collator = TranscriptionCollator(processor)
    long_take, short_take = (collator.encode(t) for t in read_folder(tmp_path))
    assert long_take.duration == pytest.approx(30.0, abs=0.01) and short_take.duration < 2

    asked: list[int] = []
    original = model.generate

    def spy(**kw):
        asked.append(kw["max_new_tokens"])
        return original(**{**kw, "max_new_tokens": 2})  # a random model never stops: keep it short

    monkeypatch.setattr(model, "generate", spy)
    transcribe(model, collator, [long_take], batch_size=1)
    transcribe(model, collator, [short_take], batch_size=1)
    reference_tokens = len(processor.tokenizer.encode(long_text, add_special_tokens=False))
    assert asked[0] > reference_tokens > token_limit(30.0)  # the duration rule alone would cut it here
    assert asked[1] == token_limit(short_take.duration) < 64
    transcribe(model, collator, [long_take], batch_size=1, max_new_tokens=5)
    assert asked[2] == 5  # an explicit cap still wins
    assert generation_limit(short_take, 1000) == asked[1]


def test_the_evaluation_transcribes_what_the_demo_and_the_snippet_would(tmp_path, tiny_voxtral_dir):
    """One model, one number: the evaluation loads the base as served (bf16) and its fine-tuned
    transcript of a take is token for token what the demo's / the card snippet's code produces."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    from voxspace.evaluate import evaluate_adapter
    from voxspace.layout import read_folder
    from voxspace.model import LM_LORA_TARGETS, ModelConfig, load_base, served_config

    torch.manual_seed(0)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=LM_LORA_TARGETS, init_lora_weights=False)
    tiny = VoxtralForConditionalGeneration.from_pretrained(tiny_voxtral_dir)
    get_peft_model(tiny, lora).save_pretrained(adapter)
    make_take(tmp_path / "takes", 1, "open the door", split="test")
    take = read_folder(tmp_path / "takes")[0]

    trained_as = ModelConfig(str(tiny_voxtral_dir), precision="fp32")  # what training loaded
    report = evaluate_adapter(load_base(served_config(trained_as)), [take], adapter)
    assert report.base_precision == "bf16"

    processor = AutoProcessor.from_pretrained(tiny_voxtral_dir)
    base = VoxtralForConditionalGeneration.from_pretrained(tiny_voxtral_dir, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    inputs = processor.apply_transcription_request(language="en", audio=str(take.wav), model_id="x")
    inputs = inputs.to(dtype=torch.bfloat16)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=token_limit(take.take.duration), do_sample=False)
    served = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    assert served.strip() and report.per_take[0].finetuned == served.strip()


def test_the_printed_report_names_the_precision_and_warns_when_not_better():
    from voxspace.evaluate import format_report
    from voxspace.run_record import EvalReport

    better = EvalReport(n_takes=3, wer_before=0.4, cer_before=0.2, wer_after=0.1, cer_after=0.05,
                        base_precision="bf16")
    text = format_report(better)
    assert "base model loaded in bf16" in text and "warning" not in text
    worse = EvalReport(n_takes=3, wer_before=0.4, cer_before=0.2, wer_after=0.4, cer_after=0.2)
    assert "warning: The fine-tuned model is not better than the base model" in format_report(worse)
