"""Build a random-initialised Voxtral and its processor fully offline, loadable by from_pretrained.

    python -m voxspace.devtools.tiny_voxtral OUT_DIR            # tiny: ~1 MB, seconds on a CPU
    python -m voxspace.devtools.tiny_voxtral OUT_DIR --full-size  # Voxtral-Mini-3B dimensions

Neither transformers nor mistral-common ships a tekken.json with an audio section, so we write
one: v7, 256 byte tokens + a few merges, 100 control tokens with the ranks Voxtral hard-codes
([AUDIO] 24, [BEGIN_AUDIO] 25, [TRANSCRIBE] 34, <s> 1, </s> 2, <pad> 11). The tiny model keeps
128 mel bins, 1500 source positions and encoder intermediate = 4 x hidden, so a 30 s chunk still
becomes 375 audio tokens exactly as in the real checkpoint.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NUM_SPECIAL = 100
MERGES = [b"th", b"he", b"in", b"er", b"an", b" t", b" a", b"the", b" the", b"on", b"re", b"at", b"en",
          b"nd", b"is", b"or", b"ou", b"it", b"es", b"ed", b"ing", b" s", b" w", b"hel", b"llo", b" wor",
          b"ld", b"ck"]
CONTROL = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
           "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
           "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
           "[TOOL_CONTENT]"]
FIXED_RANKS = {24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 32: "[ARGS]", 33: "[CALL_ID]", 34: "[TRANSCRIBE]"}


def write_tekken(path: Path) -> int:
    """Write a tiny Tekken v7 tokenizer with an audio section; returns the vocabulary size."""
    names = {**dict(enumerate(CONTROL)), **FIXED_RANKS}
    vocab = [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(),
              "token_str": chr(i) if 32 <= i < 127 else None} for i in range(256)]
    vocab += [{"rank": 256 + j, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode()}
              for j, t in enumerate(MERGES)]
    tekken = {
        "config": {"pattern": PATTERN, "num_vocab_tokens": len(vocab),
                   "default_vocab_size": NUM_SPECIAL + len(vocab),
                   "default_num_special_tokens": NUM_SPECIAL, "version": "v7"},
        "vocab": vocab,
        "special_tokens": [{"rank": i, "token_str": names.get(i, f"<SPECIAL_{i}>"), "is_control": True}
                           for i in range(NUM_SPECIAL)],
        "audio": {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                  "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}},
        "version": 1,
        "type": "Tekken",
    }
    path.write_text(json.dumps(tekken))
    return NUM_SPECIAL + len(vocab)


def tiny_config(vocab_size: int, *, seed_layers: int = 2):
    from transformers import VoxtralConfig

    return VoxtralConfig(
        audio_config={"model_type": "voxtral_encoder", "hidden_size": 32, "intermediate_size": 128,
                      "num_hidden_layers": seed_layers, "num_attention_heads": 2, "num_mel_bins": 128,
                      "max_source_positions": 1500, "vocab_size": 51866},
        text_config={"model_type": "llama", "vocab_size": vocab_size, "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": seed_layers, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 4096,
                     "rms_norm_eps": 1e-5, "rope_theta": 1e8, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 11, "tie_word_embeddings": False},
        audio_token_id=24,
        projector_hidden_act="gelu",
    )


def full_size_config():
    """Voxtral-Mini-3B's real dimensions (VoxtralConfig defaults) with the checkpoint's audio id."""
    from transformers import VoxtralConfig

    cfg = VoxtralConfig()
    cfg.audio_token_id = 24
    return cfg


def build_processor(out: Path):
    from transformers import VoxtralProcessor, WhisperFeatureExtractor
    from transformers.tokenization_mistral_common import MistralCommonBackend

    out.mkdir(parents=True, exist_ok=True)
    src = out / "tekken.json"
    vocab = write_tekken(src)
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30,
                                 n_fft=400, padding_value=0.0, return_attention_mask=False)
    tokenizer = MistralCommonBackend(tokenizer_path=str(src))
    return VoxtralProcessor(feature_extractor=fe, tokenizer=tokenizer), vocab


def build(out: str | Path, *, full_size: bool = False, seed: int = 0, save_weights: bool = True,
          layers: int = 2):
    """Write a loadable model folder to `out` and return (model, processor).

    With full_size=True the processor is still the tiny one (token ids differ from the real
    tekken), which is fine for speed and memory measurements, not for real transcription.
    """
    import torch
    from transformers import GenerationConfig, VoxtralForConditionalGeneration

    out = Path(out)
    processor, vocab = build_processor(out)
    torch.manual_seed(seed)
    config = full_size_config() if full_size else tiny_config(vocab, seed_layers=layers)
    if full_size:
        config.text_config.vocab_size = max(config.text_config.vocab_size, vocab)
    model = VoxtralForConditionalGeneration(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=11,
                                               max_new_tokens=32)
    if save_weights:
        model.save_pretrained(out)
    processor.save_pretrained(out)
    return model, processor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--full-size", action="store_true")
    args = ap.parse_args()
    build(args.out, full_size=args.full_size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
