"""Write voxspace/phrase_lists/starter.json: per language, the phoneme-balanced bundled phrases to
record first (voxspace.phonemes explains the choice). Needs espeak-ng. Deterministic: run it again
after appending phrases to a bundled list, and commit the result.

    python -m voxspace.devtools.starter_sets
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from voxspace.phonemes import STARTER_FILE, balanced_selection, inventory, phonemes_of_lines
from voxspace.phrases import bundled
from voxspace.settings import LANGUAGES


def starter_sets() -> dict[str, list[str]]:
    out = {}
    for language in LANGUAGES:
        phrases = bundled(language)
        per_line = phonemes_of_lines([p.text for p in phrases], language)
        chosen = balanced_selection(per_line, inventory(per_line))
        out[language] = [phrases[i].phrase_id for i in chosen]
    return out


def main() -> None:
    sets = starter_sets()
    path = Path(str(resources.files("voxspace.phrase_lists").joinpath(STARTER_FILE)))
    path.write_text(json.dumps(sets, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for language, ids in sets.items():
        print(f"{language}: {len(ids)} phrases")


if __name__ == "__main__":
    main()
