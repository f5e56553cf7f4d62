"""Training examples with Voxtral's real prompt layout, built from random numbers: no audio, no tokenizer.

    examples = synthetic_examples(50, vocab_size=131072, seed=0)     # 2-8 s takes, one chunk each
    trainer = Trainer(run_dir, config, "synthetic", base=(model, SyntheticProcessor()), examples=examples)

For measuring speed on a machine that has torch/transformers/peft but not mistral-common or
soundfile (a lent GPU): the compute of a training step depends on shapes, not on what the
numbers mean. Each take becomes what `TranscriptionCollator.encode` makes of a real one:
`<s>[INST][BEGIN_AUDIO][AUDIO]x375 per 30 s chunk[/INST]lang:xx[TRANSCRIBE]` + transcript + `</s>`,
prompt labels masked, mel features (n_chunks, 128, 3000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from voxspace.data import IGNORE, Example

BOS, EOS, INST, END_INST, PAD = 1, 2, 3, 4, 11
AUDIO, BEGIN_AUDIO, TRANSCRIBE = 24, 25, 34
AUDIO_TOKENS_PER_CHUNK = 375  # 30 s of audio at 12.5 Hz
CHUNK_S = 30.0
MEL_BINS, MEL_FRAMES = 128, 3000
TOKENS_PER_SECOND = 4.0  # transcript tokens per second of read speech (about 2.5 words/s)
FIRST_TEXT_ID = 100  # ordinary token ids follow the 100 control tokens (tiny tekken; the real one has 1000)
LANG_EN = (208, 360, 203, 158, 368)  # "lang:en" in the tiny tekken (devtools.tiny_voxtral)


def chunks_for(seconds: float) -> int:
    """Voxtral pads every take to whole 30 s chunks: a 2 s take costs as much encoder work as 30 s."""
    return max(1, math.ceil(seconds / CHUNK_S))


def prompt_ids(n_chunks: int, lang_ids: tuple[int, ...] | None = LANG_EN) -> torch.Tensor:
    """The transcription prompt for a take of `n_chunks` chunks (lang_ids None: auto-detect)."""
    ids = [BOS, INST, BEGIN_AUDIO, *[AUDIO] * (AUDIO_TOKENS_PER_CHUNK * n_chunks), END_INST]
    ids += [*(lang_ids or ()), TRANSCRIBE]
    return torch.tensor(ids, dtype=torch.long)


@dataclass
class SyntheticTake:
    example: Example
    seconds: float


def synthetic_examples(
    n: int,
    *,
    vocab_size: int,
    seed: int = 0,
    min_s: float = 2.0,
    max_s: float = 8.0,
    lang_ids: tuple[int, ...] | None = LANG_EN,
    prefix: str = "syn",
) -> list[SyntheticTake]:
    """`n` takes of uniform random length in [min_s, max_s] seconds, reproducible from `seed`."""
    if vocab_size <= FIRST_TEXT_ID:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for ordinary tokens")
    gen = torch.Generator().manual_seed(seed)
    out: list[SyntheticTake] = []
    for i in range(n):
        seconds = min_s + (max_s - min_s) * float(torch.rand((), generator=gen))
        n_chunks = chunks_for(seconds)
        prompt = prompt_ids(n_chunks, lang_ids)
        n_text = max(1, round(seconds * TOKENS_PER_SECOND))
        text = torch.randint(FIRST_TEXT_ID, vocab_size, (n_text,), generator=gen)
        target = torch.cat([text, torch.tensor([EOS])])
        features = torch.randn(n_chunks, MEL_BINS, MEL_FRAMES, generator=gen) * 0.5
        example = Example(
            take_id=f"{prefix}{i:04d}",
            input_ids=torch.cat([prompt, target]),
            labels=torch.cat([torch.full_like(prompt, IGNORE), target]),
            input_features=features,
            prompt_len=int(prompt.shape[0]),
            text=" ".join(str(int(t)) for t in text),
            language="en" if lang_ids else None,
            duration=seconds,
        )
        out.append(SyntheticTake(example, seconds))
    return out


class SyntheticTokenizer:
    """The two ids the collator reads, and a decoder that writes ids as words (for generate timing)."""

    pad_token_id = PAD
    eos_token_id = EOS

    def batch_decode(self, rows: Any, skip_special_tokens: bool = True) -> list[str]:
        return [
            " ".join(str(int(t)) for t in row if not (skip_special_tokens and int(t) < FIRST_TEXT_ID))
            for row in rows
        ]


class SyntheticProcessor:
    """Stands in for VoxtralProcessor when examples are pre-built: the collator only needs ids."""

    def __init__(self) -> None:
        self.tokenizer = SyntheticTokenizer()
