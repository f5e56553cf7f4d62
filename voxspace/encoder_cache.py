"""Speed lever (a): run the frozen audio encoder + projector once per take, not once per epoch.

The audio tower and projector carry no LoRA and no gradient, and a take's audio never changes, so
their output is a pure function of the take. We keep it (in memory up to `max_bytes`, beyond that
in files under `spill_dir`) and build `inputs_embeds` exactly as VoxtralModel.forward does: token
embeddings with the [AUDIO] positions replaced by the audio embeddings (masked_scatter). The
language model then sees bit-for-bit the same input (tests/test_train.py checks the loss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def voxtral_of(model: Any) -> Any:
    """The VoxtralForConditionalGeneration inside a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def audio_embeds(model: Any, input_features: torch.Tensor) -> torch.Tensor:
    """(n_chunks * 375, hidden) audio embeddings, as VoxtralModel.forward computes them."""
    inner = voxtral_of(model).model
    tower_dtype = next(inner.audio_tower.parameters()).dtype
    return inner.get_audio_features(input_features.to(tower_dtype)).pooler_output


class EncoderCache:
    """Audio embeddings per take id, bounded in memory, spilled to disk beyond the bound."""

    def __init__(self, *, max_bytes: int = 512 * 2**20, spill_dir: str | Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self._memory: dict[str, torch.Tensor] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def _spill_path(self, take_id: str) -> Path | None:
        return self.spill_dir / f"{take_id}.pt" if self.spill_dir else None

    def get(self, model: Any, take_id: str, input_features: torch.Tensor) -> torch.Tensor:
        if (hit := self._memory.get(take_id)) is not None:
            self.hits += 1
            return hit
        device = input_features.device
        spill = self._spill_path(take_id)
        if spill is not None and spill.is_file():
            self.hits += 1
            return torch.load(spill, map_location=device, weights_only=True)
        self.misses += 1
        embeds = audio_embeds(model, input_features)
        size = embeds.numel() * embeds.element_size()
        if self._bytes + size <= self.max_bytes:
            self._memory[take_id] = embeds
            self._bytes += size
        elif spill is not None:
            spill.parent.mkdir(parents=True, exist_ok=True)
            tmp = spill.with_suffix(".tmp")
            torch.save(embeds.cpu(), tmp)
            tmp.replace(spill)
        return embeds

    def inputs_embeds(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings with each take's cached audio embeddings at its [AUDIO] positions."""
        voxtral = voxtral_of(model)
        input_ids = batch["input_ids"]
        features = batch["input_features"].split(batch["chunks"])
        audio = torch.cat(
            [self.get(model, tid, f) for tid, f in zip(batch["take_ids"], features, strict=True)]
        )
        embeds = voxtral.get_input_embeddings()(input_ids)
        mask = (input_ids == voxtral.config.audio_token_id).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, audio.to(embeds.device, embeds.dtype))
