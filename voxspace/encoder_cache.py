"""Speed lever (a): run the frozen audio encoder + projector once per take, not once per epoch.

The audio tower and projector carry no LoRA and no gradient, and a take's audio never changes, so
their output is a pure function of the take. We keep it (in memory up to `max_bytes`, beyond that
in files under `spill_dir`; with `write_through`, always on disk too, so that the next ZeroGPU call,
a fresh process, does not run the encoder again) and build `inputs_embeds` exactly as
VoxtralModel.forward does: token embeddings with the [AUDIO] positions replaced by the audio
embeddings (masked_scatter). The language model then sees bit-for-bit the same input
(tests/test_train.py checks the loss).

With the encoder option (LoRA on the top N encoder layers and the projector, issue 15) the same idea
works one level down: what is cached is the output of the frozen layers below the adapted ones, and
the adapted layers, the final norm and the projector run on it in every step, with gradients. Which
level applies is read off the model itself (`adapted_from`), so a cache can never serve output that
an adapter would have changed; the two levels have different keys, and a take's projector-output
entry keeps its old key (and spill file name).

A run keeps the outputs on disk in one folder per precision (`run_cache_dir`): training and both
evaluations read what any of them computed in the same precision (the served bf16 base's "before"
pass computes each held-out take once, and the "after" pass and later GPU calls read it), and never
what was computed in another (an 8-bit or fp32 training cache never feeds the bf16 evaluation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from voxspace import atomic_file


def run_cache_dir(run_dir: str | Path, precision: str) -> Path:
    """Where a run keeps the encoder outputs computed in `precision` (model.precision_of)."""
    from voxspace.run_record import ENCODER_CACHE_DIR

    return Path(run_dir) / ENCODER_CACHE_DIR / precision


def voxtral_of(model: Any) -> Any:
    """The VoxtralForConditionalGeneration inside a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def audio_embeds(model: Any, input_features: torch.Tensor) -> torch.Tensor:
    """(n_chunks * 375, hidden) audio embeddings, as VoxtralModel.forward computes them."""
    inner = voxtral_of(model).model
    tower_dtype = next(inner.audio_tower.parameters()).dtype
    return inner.get_audio_features(input_features.to(tower_dtype)).pooler_output


def adapted_from(model: Any) -> int | None:
    """Index of the lowest audio-encoder layer with LoRA in it (the layer count when only the
    projector has some); None when the audio path carries no LoRA at all."""
    inner = voxtral_of(model).model
    layers = inner.audio_tower.layers
    for i, layer in enumerate(layers):
        if _has_lora(layer):
            return i
    return len(layers) if _has_lora(inner.multi_modal_projector) else None


def _has_lora(module: Any) -> bool:
    return any(hasattr(m, "lora_A") for m in module.modules())


@torch.no_grad()
def frozen_hidden(model: Any, input_features: torch.Tensor, n_layers: int) -> torch.Tensor:
    """(n_chunks, 1500, d) hidden states after the first `n_layers` encoder layers, as
    VoxtralEncoder.forward computes them (tests compare this path with the model's own forward)."""
    tower = voxtral_of(model).model.audio_tower
    x = input_features.to(tower.conv1.weight.dtype)
    x = torch.nn.functional.gelu(tower.conv1(x))
    x = torch.nn.functional.gelu(tower.conv2(x)).permute(0, 2, 1)
    hidden = (x + tower.embed_positions.weight).to(x.dtype)
    hidden = torch.nn.functional.dropout(hidden, p=tower.dropout, training=tower.training)
    for layer in tower.layers[:n_layers]:
        hidden = layer(hidden, attention_mask=None)
    return hidden


def embeds_from_hidden(model: Any, hidden: torch.Tensor, start: int) -> torch.Tensor:
    """The rest of the audio path on cached `hidden`: layers[start:], final norm, projector (with
    gradients: this is where the encoder adapter learns)."""
    inner = voxtral_of(model).model
    tower = inner.audio_tower
    for layer in tower.layers[start:]:
        hidden = layer(hidden, attention_mask=None)
    hidden = tower.layer_norm(hidden).reshape(-1, inner.config.audio_config.intermediate_size)
    return inner.multi_modal_projector(hidden)


class EncoderCache:
    """Audio embeddings per take id, bounded in memory, spilled to disk beyond the bound."""

    def __init__(
        self,
        *,
        max_bytes: int = 512 * 2**20,
        spill_dir: str | Path | None = None,
        write_through: bool = False,
    ) -> None:
        """`write_through`: every new embedding also goes to `spill_dir` at once, for a process whose
        memory is thrown away after each call (a ZeroGPU worker): the next one reads it from disk."""
        self.max_bytes = max_bytes
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self.write_through = write_through and self.spill_dir is not None
        self._memory: dict[str, torch.Tensor] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def _spill_path(self, take_id: str) -> Path | None:
        return self.spill_dir / f"{take_id}.pt" if self.spill_dir else None

    def get(
        self, model: Any, take_id: str, input_features: torch.Tensor, level: int | None = None
    ) -> torch.Tensor:
        """The take's audio embeddings, or with `level` its hidden states below encoder layer `level`."""
        return self.get_many(model, [take_id], [input_features], level)[0]

    def get_many(
        self, model: Any, take_ids: list[str], features: list[torch.Tensor], level: int | None = None
    ) -> list[torch.Tensor]:
        """`get` for several takes; those not cached yet go through the encoder together, in one call
        (one call per take costs several times more where per-call overhead dominates)."""
        keys = [tid if level is None else f"{tid}.below{level}" for tid in take_ids]
        found = [self._lookup(key, f.device) for key, f in zip(keys, features, strict=True)]
        missing = [i for i, hit in enumerate(found) if hit is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            batch = torch.cat([features[i] for i in missing])
            out = audio_embeds(model, batch) if level is None else frozen_hidden(model, batch, level)
            rows = out.shape[0] // batch.shape[0]  # per 30 s chunk: 375 embeddings, or 1 hidden state
            parts = out.split([features[i].shape[0] * rows for i in missing])
            for i, part in zip(missing, parts, strict=True):
                found[i] = self._keep(keys[i], part.clone())  # a copy: a view would keep (and save) all
        return [hit for hit in found if hit is not None]

    def _lookup(self, key: str, device: torch.device) -> torch.Tensor | None:
        if (hit := self._memory.get(key)) is not None:
            return hit
        spill = self._spill_path(key)
        if spill is not None and spill.is_file():
            return torch.load(spill, map_location=device, weights_only=True)
        return None

    def _keep(self, key: str, embeds: torch.Tensor) -> torch.Tensor:
        size = embeds.numel() * embeds.element_size()
        in_memory = self._bytes + size <= self.max_bytes
        if in_memory:
            self._memory[key] = embeds
            self._bytes += size
        spill = self._spill_path(key)
        if spill is not None and (self.write_through or not in_memory):
            spill.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file.replacing(spill) as tmp:
                torch.save(embeds.cpu(), tmp)
        return embeds

    def inputs_embeds(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings with each take's cached audio embeddings at its [AUDIO] positions."""
        voxtral = voxtral_of(model)
        input_ids = batch["input_ids"]
        features = batch["input_features"].split(batch["chunks"])
        level = adapted_from(model)
        audio = torch.cat(self.get_many(model, list(batch["take_ids"]), list(features), level))
        if level is not None:
            audio = embeds_from_hidden(model, audio, level)
        embeds = voxtral.get_input_embeddings()(input_ids)
        mask = (input_ids == voxtral.config.audio_token_id).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, audio.to(embeds.device, embeds.dtype))
