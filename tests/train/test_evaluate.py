"""What the WER/CER numbers count: normalisation per language, and how long a transcript may grow."""

from __future__ import annotations

import unicodedata

import pytest

from tests.train.conftest import make_take
from tests.train.fake_cuda import FakeCudaMemory
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

    better = EvalReport(
        n_takes=3, wer_before=0.4, cer_before=0.2, wer_after=0.1, cer_after=0.05, base_precision="bf16"
    )
    text = format_report(better)
    assert "base model loaded in bf16" in text and "warning" not in text
    worse = EvalReport(n_takes=3, wer_before=0.4, cer_before=0.2, wer_after=0.4, cer_after=0.2)
    assert "warning: The fine-tuned model is not better than the base model" in format_report(worse)


# --- generate calls fitted to the GPU's memory ----------------------------------------------------------
class FakeGenerateGpu(FakeCudaMemory):
    """A GPU while `generate` runs (tests/train/fake_cuda.py): what it holds is the prompt at prefill
    plus one token per take at each decode step; above `oom_above` tokens it runs out of memory."""

    def __init__(self, model, *, fits: int, oom_above: int | None = None):
        super().__init__(model, fits=fits)
        self.oom_above = oom_above
        self.calls: list[int] = []  # takes in each generate call that completed its prefill
        self.peaks: list[int] = []  # the most tokens held in each of those calls
        self._held = 0

    def seen(self, takes: int, length: int) -> None:
        import torch

        self._held = takes * length if length > 1 else self._held + takes  # prefill, or one decode step
        if self.oom_above is not None and self._held > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (fake GPU)")
        if length > 1:
            self.calls.append(takes)
            self.peaks.append(0)
        self.peaks[-1] = max(self.peaks[-1], self._held)
        self._peak = max(self._peak, self._held)


@pytest.fixture
def twenty(tmp_path, base):
    """Twenty held-out takes of varied length, encoded as the evaluation reads them."""
    from voxspace.data import TranscriptionCollator
    from voxspace.layout import read_folder

    sentence = "open the door and read the green book while it is raining again"
    words = sentence.split(" ")
    for seq in range(20):
        make_take(tmp_path, seq, " ".join(words[: 2 + seq % 9]), split="test")
    collator = TranscriptionCollator(base[1])
    return collator, [collator.encode(t) for t in read_folder(tmp_path)]


def _calls_on_cpu(model, collator, examples):
    calls: list[int] = []
    original = model.generate

    def counting(**kw):
        calls.append(int(kw["input_ids"].shape[0]))
        return original(**kw)

    model.generate = counting
    try:
        return transcribe(model, collator, examples, max_new_tokens=3), calls
    finally:
        del model.generate


def test_a_roomy_gpu_transcribes_the_held_out_takes_in_fewer_generate_calls_with_the_same_text(base, twenty):
    model, (collator, examples) = base[0], twenty
    fixed, cpu_calls = _calls_on_cpu(model, collator, examples)
    assert cpu_calls == [8, 8, 4]  # no GPU: batches of 8

    gpu = FakeGenerateGpu(model, fits=100_000)
    try:
        fitted = transcribe(model, collator, examples, max_new_tokens=3, memory=gpu)
    finally:
        gpu.close()
    assert gpu.calls == [8, 12]  # the first call measures; the rest share one call
    assert fitted == fixed


def test_a_tight_gpu_holds_what_its_free_memory_allows_per_call(base, twenty):
    model, (collator, examples) = base[0], twenty
    per_take = examples[0].prompt_len + 3  # every take here is under 30 s: one prompt length
    assert {e.prompt_len for e in examples} == {examples[0].prompt_len}
    gpu = FakeGenerateGpu(model, fits=3 * per_take)
    try:
        fitted = transcribe(model, collator, examples, max_new_tokens=3, memory=gpu)
    finally:
        gpu.close()
    assert gpu.calls[0] == 8 and sum(gpu.calls) == 20
    assert max(gpu.calls[1:]) == 3  # 3 takes' worth of tokens fit beyond the reserve
    assert all(peak <= 3 * per_take for peak in gpu.peaks[1:])
    assert fitted == _calls_on_cpu(model, collator, examples)[0]


def test_a_call_that_runs_out_of_memory_is_retried_in_halves(base, twenty):
    """The free memory promises room, but the GPU fails above 2 takes (another process, fragmentation):
    the measuring call halves from 8 to 2, and later calls shrink until they fit; nothing is lost."""
    model, (collator, examples) = base[0], twenty
    per_take = examples[0].prompt_len + 3
    gpu = FakeGenerateGpu(model, fits=100_000, oom_above=2 * per_take)
    try:
        fitted = transcribe(model, collator, examples, max_new_tokens=3, memory=gpu)
    finally:
        gpu.close()
    assert gpu.calls[0] == 2 and max(gpu.calls) == 2 and sum(gpu.calls) == 20
    assert gpu.released >= 3  # memory handed back after each failure
    assert fitted == _calls_on_cpu(model, collator, examples)[0]


def test_one_take_that_does_not_fit_stops_with_a_sentence(base, twenty):
    from voxspace.errors import OutOfGPUMemory

    model, (collator, examples) = base[0], twenty
    gpu = FakeGenerateGpu(model, fits=100_000, oom_above=examples[0].prompt_len - 1)
    try:
        with pytest.raises(OutOfGPUMemory) as error:
            transcribe(model, collator, examples[:4], max_new_tokens=3, memory=gpu)
    finally:
        gpu.close()
    assert "ran out of memory transcribing 1 held-out take" in error.value.user_message
    assert "GPU with more memory" in error.value.user_message
