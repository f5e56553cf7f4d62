"""What the person reads aloud: bundled lists, their own lines, or transcripts from a Hub dataset.

Bundled lists live in voxspace/phrase_lists/<lang>.txt, one sentence a line; a phrase's id is its
line number ("en-0042"), so the lists are append-only: editing or reordering a line would give a
recorded take's phrase_id another sentence. Custom phrases get ids from their text, so pasting the
same list again (or on another device) resumes where the person left off.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from voxspace.errors import BadInput, ControlCharacters
from voxspace.input_checks import control_character
from voxspace.settings import LANGUAGES

MAX_CUSTOM_WORDS = 30
MAX_CUSTOM_LINES = 5_000
MAX_CUSTOM_BYTES = 1_000_000
READABLE_WORDS = (3, 15)  # a prompt one can read in one breath, well under a 30 s take


@dataclass(frozen=True)
class Phrase:
    phrase_id: str
    text: str
    language: str  # "en", ... or "" when unknown (Voxtral then auto-detects)


def _check_language(language: str, *, allow_unknown: bool = False) -> None:
    if language in LANGUAGES or (allow_unknown and language == ""):
        return
    raise BadInput(f"Unsupported language {language!r}. Choose one of: {', '.join(LANGUAGES)}.")


def bundled(language: str) -> list[Phrase]:
    """The built-in list for `language` (one of settings.LANGUAGES), in reading order."""
    _check_language(language)
    return list(_read_list(language))


@functools.lru_cache(maxsize=len(LANGUAGES))
def _read_list(language: str) -> tuple[Phrase, ...]:
    text = resources.files("voxspace.phrase_lists").joinpath(f"{language}.txt").read_text("utf-8")
    return tuple(Phrase(f"{language}-{n:04d}", line.strip(), language)
                 for n, line in enumerate(text.splitlines(), start=1) if line.strip())


def reading_order(language: str) -> list[Phrase]:
    """The bundled list as it is offered: the phoneme-balanced starter set first (voxspace.phonemes),
    then the rest in file order. Ids are unchanged, so takes already recorded keep their phrase."""
    from voxspace.phonemes import starter_ids

    phrases = bundled(language)
    first = starter_ids(language)
    by_id = {p.phrase_id: p for p in phrases}
    head = [by_id[i] for i in first if i in by_id]
    chosen = {p.phrase_id for p in head}
    return head + [p for p in phrases if p.phrase_id not in chosen]


def _clean(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def parse_custom(text_or_bytes: str | bytes, language: str) -> list[Phrase]:
    """The person's own phrases, pasted or from an uploaded .txt: one per line.

    Blank lines and lines starting with '#' are skipped and repeats dropped (ignoring case and
    spacing). Binary content or a line over 30 words raises BadInput naming the line.
    """
    _check_language(language, allow_unknown=True)
    if isinstance(text_or_bytes, bytes):
        if len(text_or_bytes) > MAX_CUSTOM_BYTES:
            raise BadInput("This phrase file is too large: keep it under 1 MB of text.",
                           detail=f"{len(text_or_bytes)} bytes")
        if b"\x00" in text_or_bytes:
            raise BadInput("This file is not plain text. Upload a .txt file with one phrase per line.",
                           detail="NUL byte in content")
        try:
            text = text_or_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise BadInput("This file is not UTF-8 text. Save it as UTF-8 plain text (.txt) and "
                           "upload it again.", detail=str(e)) from e
    else:
        text = text_or_bytes
    what = control_character(text)  # before splitting: some of them count as line breaks
    if what is not None:
        raise ControlCharacters(f"This is not plain text: it holds a control character ({what}). "
                                "Upload a .txt file with one phrase per line.",
                                detail="control characters in content")

    phrases: list[Phrase] = []
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        line = _clean(raw)
        if not line or line.startswith("#"):
            continue
        if len(line.split()) > MAX_CUSTOM_WORDS:
            raise BadInput(f"Line {n} has {len(line.split())} words; keep each phrase to "
                           f"{MAX_CUSTOM_WORDS} words or fewer so it fits in one take.",
                           detail=line[:80])
        key = line.casefold()
        if key in seen:
            continue
        seen.add(key)
        phrases.append(Phrase(custom_id(line), line, language))
        if len(phrases) > MAX_CUSTOM_LINES:
            raise BadInput(f"Too many phrases: add at most {MAX_CUSTOM_LINES} at a time.")
    if not phrases:
        raise BadInput("No phrases found. Write one phrase per line (lines starting with # are "
                       "ignored).")
    return phrases


def custom_id(text: str) -> str:
    """Stable id of a custom phrase: the same text always gets the same id."""
    return "custom-" + hashlib.sha256(_clean(text).encode("utf-8")).hexdigest()[:8]


def next_phrase(phrases: list[Phrase], done_ids: Iterable[str],
                skipped_ids: Iterable[str] = (), taken_ids: Iterable[str] = ()) -> Phrase | None:
    """The first phrase not yet recorded; skipped ones come back only once the rest are done.
    `taken_ids` (shown on another page of the same person, PhraseClaims) never come back."""
    done, skipped = set(done_ids) | set(taken_ids), set(skipped_ids)
    todo = [p for p in phrases if p.phrase_id not in done]
    fresh = [p for p in todo if p.phrase_id not in skipped]
    return (fresh or todo or [None])[0]


class PhraseClaims:
    """Which phrase each open page of one person shows, so that two tabs (or a phone and a laptop)
    never record the same phrase twice. In memory: one app process serves every page of a Space.
    A page that stopped asking for phrases (closed) loses its claim after `ttl_s`."""

    def __init__(self, ttl_s: float = 120.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._claims: dict[str, dict[str, tuple[str, float]]] = {}  # owner -> page -> (phrase, when)

    def claim(self, owner: str, page: str, phrase_id: str | None) -> None:
        with self._lock:
            pages = self._claims.setdefault(owner, {})
            if phrase_id is None:
                pages.pop(page, None)
            else:
                pages[page] = (phrase_id, time.monotonic())

    def taken_by_others(self, owner: str, page: str) -> set[str]:
        now = time.monotonic()
        with self._lock:
            pages = self._claims.get(owner, {})
            for stale in [p for p, (_, t) in pages.items() if now - t > self.ttl_s]:
                del pages[stale]
            return {phrase for p, (phrase, _) in pages.items() if p != page}


CLAIMS = PhraseClaims()


def readable(text: str) -> bool:
    return READABLE_WORDS[0] <= len(text.split()) <= READABLE_WORDS[1]


def from_hub_dataset(repo_id: str, *, config: str | None = None, split: str = "train",
                     text_column: str = "text", language: str, limit: int = 200,
                     token: str | None = None, endpoint: str | None = None) -> list[Phrase]:
    """Up to `limit` readable transcripts (3-15 words) streamed from a Hub dataset.

    Only the text column is read, so an audio dataset (e.g. NVIDIA Granary's `<lang>_<corpus>`
    configs) costs no audio download. Ids are custom_id(text), like pasted phrases.
    """
    from voxspace.hub_stream import stream_rows

    _check_language(language, allow_unknown=True)
    phrases: list[Phrase] = []
    seen: set[str] = set()
    for row in stream_rows(repo_id, config=config, split=split, columns=(text_column,),
                           token=token, endpoint=endpoint):
        line = _clean(str(row.get(text_column) or ""))
        if not readable(line) or line.casefold() in seen:
            continue
        seen.add(line.casefold())
        phrases.append(Phrase(custom_id(line), line, language))
        if len(phrases) >= limit:
            break
    if not phrases:
        raise BadInput(f"No readable phrases (3-15 words) in column {text_column!r} of {repo_id}.")
    return phrases
