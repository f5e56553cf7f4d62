"""VoxSpace: record your voice, fine-tune Voxtral with LoRA, publish a demo, from the browser.

The package is the whole product; `app.py` and `python -m voxspace` are thin fronts on it.
Modules, in the order a take and a run flow through them:
settings, errors, auth -> phrases, audio, layout, store (Record) -> data, model, train, evaluate,
tracking (Train) -> publish, card, demo (Publish). The UI lives in voxspace/ui, one module per tab.
"""

__version__ = "0.1.0"
