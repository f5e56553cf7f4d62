"""The durable path of a take: local spool -> acknowledged -> pushed with retry -> resumed.

    store = TakeStore.for_identity(settings, identity)          # one store per person
    take = store.save(wav, 2.4, text="Hello", language="en", phrase_id="en-0001")
    store.stats(); store.flush(timeout=30)

`save` writes the take to a spool in the dataset layout (voxspace.layout) durably: into a hidden
folder, each file fsynced, the folder renamed into place atomically, the parent fsynced. When it
returns, the take survives a `kill -9`: that return is the acknowledgement. A background thread per
store then commits spooled takes to the person's private dataset repo (created on first push with a
dataset card), retrying with exponential backoff capped at settings.push_retry_max_s, and removes
them from the spool. Each take only ever adds its own folder, so no commit rewrites an earlier one.
Commits are paced by the repo's commit budget (voxspace.commit_budget): one per take while it is
ample, then every pending take together, so the Hub's 128 commits per hour are never reached; a
429's Retry-After is honoured, and a Save made while the pusher waits sends nothing early.

Per person and repo, under <data_dir>/users/<username>/<namespace>--<name>/: owner.json (whose,
where; never a token), spool/ (pending takes, dataset layout) and on_hub.jsonl (a ledger of pushed
takes' metadata, so a sign-in on this disk downloads only what it has not seen).
No-token mode (local runs only): takes stay in <data_dir>/local, same layout, until
`push_local_folder` moves them into a signed-in person's spool.

The honest trade-off: tokens are never written to disk, so only a process holding the owner's token
can push a spool. `recover_pending` (start-up) pushes the spools of this machine's token owner; in a
Space, a visitor's pending takes are pushed when that visitor next signs in (for_identity starts their
pusher). Until then they wait on the Space's disk, which survives restarts only with persistent
storage (/data); that is why a push is attempted the moment a take is saved.

Two devices of one person (each its own data folder and pusher) write to one repo: every commit
names the head this store last read (`parent_commit`). When another device committed meanwhile the
Hub answers 412; the store reads the repo again (the other device's takes and card), gives its
pending takes that now share a seq with a take on the Hub the next free seqs (their split mark and
path stay), rebuilds the card from everything on the Hub plus its own takes (every language), and
commits again. Paths never collide anyway: a take id is its time plus its audio's fingerprint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from huggingface_hub.errors import HfHubHTTPError

from voxspace import storage
from voxspace.auth import Identity, resolve_identity
from voxspace.commit_budget import CommitBudget
from voxspace.errors import AuthError, BadInput, DuplicateTake, HubError, RateLimited, VoxSpaceError
from voxspace.hub import (
    as_user_error,
    commit_with_retry,
    default_dataset_repo,
    ensure_private_repo,
    hub_api,
    is_conflict,
    user_cache_dir,
    validate_repo_id,
)
from voxspace.input_checks import check_transcript
from voxspace.layout import (
    METADATA,
    SPLITS,
    Take,
    audio_fingerprint,
    fingerprint_of,
    new_take_id,
    read_folder,
    split_for,
)
from voxspace.settings import LANGUAGES, Settings
from voxspace.spool_lock import SpoolLock, critical

if TYPE_CHECKING:
    from huggingface_hub import HfApi

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5  # 412s in a row (another device committing meanwhile) before backing off
POLL_S = 2.0  # how often a store looks for takes other processes put in its spool (and for the lock)
_METADATA_PATH = re.compile(rf"data/({'|'.join(SPLITS)})/[^/]+/{re.escape(METADATA)}")


@dataclass(frozen=True)
class StoreStats:
    """What the progress meter shows."""

    takes: int
    minutes: float  # of speech, as stored
    train: int
    test: int
    pending: int  # saved here, not yet on the Hub
    last_error: str | None  # the last push failure, as a sentence for the person
    done_phrase_ids: frozenset[str]
    repo_id: str | None  # None in local no-token mode
    local_only: bool
    location: str  # where the takes are: a repo id or a folder
    next_push_s: float | None = None  # seconds until pending takes go up (None: nothing waiting)
    pushed_by_pid: int | None = None  # another process owns this spool and pushes these takes
    notice: str | None = None  # something the person should know that is not a failure
    survives_restart: bool = True  # False: a Space's own disk, wiped on restart (voxspace.storage)


def local_folder(settings: Settings) -> Path:
    """Where takes recorded with no token wait (local runs only)."""
    return Path(settings.data_dir) / "local"


def dataset_card(username: str, takes: Iterable[Take], repo_id: str) -> str:
    """README.md for a recordings repo: YAML that `load_dataset(repo_id)` and the Hub understand,
    listing only the splits that exist (a config naming an empty split fails to load)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    takes = list(takes)
    splits = [s for s in SPLITS if any(t.split == s for t in takes)]
    languages = sorted({t.language for t in takes if t.language})
    data = DatasetCardData(
        license="other", language=languages or None, task_categories=["automatic-speech-recognition"],
        pretty_name=f"VoxSpace recordings of {username}", tags=["voxspace", "audio"],
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"data/{s}/**"} for s in splits]}],
    )
    body = (f"# VoxSpace recordings of {username}\n\n"
            f"Read-aloud phrases recorded by {username} with VoxSpace to fine-tune Voxtral on their own "
            "voice: 16 kHz mono 16-bit WAV, one folder per take with its transcript in "
            "`metadata.jsonl`. The `test` split is held out from training for evaluation.\n\n"
            "The recordings belong to the speaker; this repository is private unless they decide "
            "otherwise.\n\n```python\nfrom datasets import load_dataset\n\n"
            f"ds = load_dataset(\"{repo_id}\")\n```\n")
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}").content


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_take_durably(root: Path, take: Take, wav_bytes: bytes) -> Path:
    """Write one take into `root` (dataset layout) so that it is either wholly there or absent
    after a crash: temp folder, fsync each file, atomic rename, fsync the parents."""
    incoming = Path(root) / ".incoming" / take.take_id
    final = Path(root) / take.folder
    incoming.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    _write_file_synced(incoming / take.wav_name, wav_bytes)
    _write_file_synced(incoming / METADATA, take.metadata_line().encode("utf-8"))
    _fsync_dir(incoming)
    os.rename(incoming, final)
    _fsync_dir(final.parent)
    _fsync_dir(incoming.parent)
    return final


def _rewrite_metadata(root: Path, take: Take) -> None:
    """Replace a spooled take's metadata row atomically (a renumbered seq): old or new after a crash."""
    path = Path(root) / take.folder / METADATA
    tmp = path.with_name(f".{METADATA}.tmp")
    _write_file_synced(tmp, take.metadata_line().encode("utf-8"))
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _check_take_input(wav_bytes: bytes, duration: float, text: str, language: str) -> str:
    """The take's transcript, cleaned (input_checks.check_transcript); BadInput when it cannot be stored."""
    if not isinstance(wav_bytes, bytes | bytearray) or wav_bytes[:4] != b"RIFF" or wav_bytes[8:12] != b"WAVE":
        raise BadInput("This take is not a WAV file; it was not saved.",
                       detail="the store expects prepared WAV bytes")
    if not duration or duration <= 0:
        raise BadInput("This take has no audio; it was not saved.", detail=f"duration={duration!r}")
    if not (text or "").strip():
        raise BadInput("A take needs the sentence that was read; it was not saved.")
    if language and language not in LANGUAGES:
        raise BadInput(f"Unknown language '{language}': choose one of {', '.join(LANGUAGES)}.")
    return check_transcript(text, duration)


class TakeStore:
    """One person's takes: a durable local spool and (when signed in) a pusher to their repo."""

    _registry: ClassVar[dict[tuple, TakeStore]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, settings: Settings, identity: Identity, repo_id: str | None):
        self.settings = settings
        self._identity = identity
        self.repo_id = repo_id
        self.local_only = repo_id is None
        if self.local_only:
            self.root = local_folder(settings)
            owner_dir = self.root.parent
        else:
            owner_dir = Path(settings.data_dir) / "users" / identity.username / repo_id.replace("/", "--")
            owner_dir.mkdir(parents=True, exist_ok=True)
            owner = {"username": identity.username, "repo_id": repo_id, "endpoint": settings.hub_endpoint}
            if not (owner_dir / "owner.json").exists():  # no token in here, ever
                _write_file_synced(owner_dir / "owner.json", json.dumps(owner).encode())
            self.root = owner_dir / "spool"
        self._ledger = owner_dir / "on_hub.jsonl"
        self._ledger_offset = 0
        self._critical = owner_dir / (f"{self.root.name}.seq.lock")  # picking a seq and writing a take
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._known: dict[str, Take] = {}  # on the Hub (or, local-only, in the folder)
        self._spooled: dict[str, Take] = {}
        self._card_text: str | None = None
        self._head: str | None = None  # the repo's commit as this store last read or made it
        self._resumed = self.local_only
        self._repo_ready = False
        self._last_error: str | None = None
        self._notice: str | None = None
        self._known_once = False  # this store saw its repo exist: re-creating it is worth a sentence
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._resume_lock = threading.Lock()
        self._budget = CommitBudget(settings.commit_budget)
        self.storage = storage.detect(settings)
        self._retry_at = 0.0  # time.monotonic() before which a failed push is not tried again
        self._pusher = SpoolLock(owner_dir / "pusher.lock")
        if not self.local_only and self._pusher.try_acquire():
            with critical(self._critical):  # nobody is half-way through writing a take now
                shutil.rmtree(self.root / ".incoming", ignore_errors=True)  # never acknowledged
        with critical(self._critical):
            self._refresh_from_disk()
        if not self.local_only:
            self._thread = threading.Thread(target=self._run, name=f"push-{repo_id}", daemon=True)
            self._thread.start()
            if self._spooled:
                self._wake.set()

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def for_identity(cls, settings: Settings, identity: Identity, repo_id: str | None = None) -> TakeStore:
        """The store for this person (one per person and repo, shared by their sessions).

        Signed in: takes go to `repo_id` (default `<user>/voxspace-recordings`). Not signed in: a local
        folder, except in a Space, where an anonymous visitor must sign in (visitors never share a folder).
        """
        if identity.signed_in:
            default = default_dataset_repo(identity.username, settings)  # vouches for the username too
            repo_id = validate_repo_id(repo_id or default, default_namespace=identity.username)
        elif settings.in_space:
            raise AuthError("Sign in with Hugging Face to record: your takes go to your own private dataset.")
        else:
            repo_id = None
        key = (str(settings.data_dir), settings.hub_endpoint, identity.username if repo_id else None, repo_id)
        with cls._registry_lock:
            store = cls._registry.get(key)
            if store is None or store._closed:
                store = cls._registry[key] = cls(settings, identity, repo_id)
            elif identity.signed_in and identity.token != store._identity.token:
                store._identity = identity  # a fresh sign-in: push with the new token
                store._wake.set()
        if not store._resumed:  # outside the registry lock: one person's Hub read never blocks another's
            store._try_resume()
        return store

    @classmethod
    def close_all(cls, timeout: float = 5.0) -> None:
        """Stop every pusher (tests, shutdown). Pending takes stay in their spools."""
        with cls._registry_lock:
            stores, cls._registry = list(cls._registry.values()), {}
        for store in stores:
            store.close(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._pusher.release()  # another process may push this spool now

    @property
    def is_pusher(self) -> bool:
        """Whether this process pushes the spool (False: another process holds it; see spool_lock)."""
        return self._pusher.held

    # --- what other processes wrote ---------------------------------------------------------------
    def _refresh_from_disk(self) -> None:
        """Take in what another process on this data folder did: takes it put in the spool (or the
        local folder), and takes it pushed (the ledger). Cheap: the spool holds only pending takes.
        Called under `critical`, so no take is half-written meanwhile."""
        on_disk = {lt.take.take_id: lt.take for lt in read_folder(self.root)}
        pushed = [] if self.local_only else self._read_ledger(since=self._ledger_offset)
        with self._lock:
            if self.local_only:
                self._known = on_disk
                return
            for take in pushed:
                self._known[take.take_id] = take
                self._spooled.pop(take.take_id, None)
            for take_id, take in on_disk.items():
                if take_id not in self._known:
                    self._spooled[take_id] = take  # the disk's row: the pusher may have renumbered it
            for take_id in [t for t in self._spooled if t not in on_disk]:  # pushed by the owner
                self._known[take_id] = self._spooled.pop(take_id)
            self._changed.notify_all()

    def _same_audio(self, fingerprint: str) -> Take | None:
        return next((t for t in self._all() if fingerprint_of(t.take_id) == fingerprint), None)

    # --- recording ------------------------------------------------------------------------------
    def save(self, wav_bytes: bytes, duration: float, *, text: str, language: str, phrase_id: str,
             source: str = "mic", duplicates: str = "auto") -> Take:
        """Store one prepared take (16 kHz mono 16-bit WAV) durably and return it: the acknowledgement.
        The push to the Hub happens in the background.

        `duplicates` says what audio this person already has means (DuplicateTake names the take):
        "refuse" it (the default for files: upload, import, CLI); "resend": refuse it only with the
        same text (a browser sending a kept take again); "allow" (the default for a live microphone
        take, new audio by nature: only a replayed test microphone could match)."""
        text = _check_take_input(wav_bytes, duration, text, language)
        fingerprint = audio_fingerprint(wav_bytes)
        if duplicates == "auto":
            duplicates = "allow" if source == "mic" else "refuse"
        with critical(self._critical):  # one seq per take, whichever process saves it
            self._refresh_from_disk()
            with self._lock:
                same = self._same_audio(fingerprint)
                if same is not None and (duplicates == "refuse"
                                         or (duplicates == "resend" and same.text == text)):
                    raise _duplicate(same)
                seq = 1 + max((t.seq for t in self._all()), default=-1)
                # A second take of the same audio (allowed from the microphone) gets a random suffix,
                # so ids stay unique; the first one already names that audio.
                take = Take(take_id=new_take_id(None if same else fingerprint), text=text,
                            language=language or "",
                            duration=round(float(duration), 3), phrase_id=phrase_id or "",
                            split=split_for(seq), seq=seq, created_at=time.time(), source=source)
                write_take_durably(self.root, take, bytes(wav_bytes))
                (self._known if self.local_only else self._spooled)[take.take_id] = take
                self._changed.notify_all()
        log.info("take %s saved (seq %d, %s, %.1f s) for %s", take.take_id, seq, take.split, take.duration,
                 self.repo_id or self.root)
        self._wake.set()
        return take

    def push_local_folder(self, folder: str | os.PathLike | None = None) -> int:
        """Move takes recorded with no token (a layout folder, default the local one) into this
        person's spool, to be pushed. Each keeps its id and split mark and gets the next seq."""
        if self.local_only:
            raise AuthError("Sign in (or set HF_TOKEN) to push local takes to your dataset repo.")
        folder = Path(folder) if folder else local_folder(self.settings)
        moved = 0
        for local in read_folder(folder):
            with critical(self._critical), self._lock:
                if local.take.take_id in self._known or local.take.take_id in self._spooled:
                    continue
                seq = 1 + max((t.seq for t in self._all()), default=-1)
                take = replace(local.take, seq=seq)
                write_take_durably(self.root, take, local.wav.read_bytes())
                self._spooled[take.take_id] = take
            shutil.rmtree(local.wav.parent)  # only once the spool copy is durable
            moved += 1
        if moved:
            log.info("moved %d local takes into the spool of %s", moved, self.repo_id)
            self._wake.set()
        return moved

    # --- reading --------------------------------------------------------------------------------
    def _all(self) -> list[Take]:
        return [*self._known.values(), *self._spooled.values()]

    def takes(self) -> list[Take]:
        """Every take of this person, on the Hub or pending, in recording order."""
        with self._lock:
            return sorted(self._all(), key=lambda t: (t.seq, t.take_id))

    def stats(self) -> StoreStats:
        with self._lock:
            takes = self._all()
            return StoreStats(
                takes=len(takes), minutes=round(sum(t.duration for t in takes) / 60, 2),
                train=sum(t.split == "train" for t in takes), test=sum(t.split == "test" for t in takes),
                pending=len(self._spooled), last_error=self._last_error,
                done_phrase_ids=frozenset(t.phrase_id for t in takes if t.phrase_id),
                repo_id=self.repo_id, local_only=self.local_only,
                location=str(self.root) if self.local_only else self.repo_id,
                next_push_s=round(self._due_in_s(), 1) if self._spooled and self.is_pusher else None,
                pushed_by_pid=None if self.local_only or self.is_pusher else self._pusher.holder_pid(),
                notice=self._notice, survives_restart=self.storage.survives_restart)

    @property
    def resumed(self) -> bool:
        """Whether this store has read its repo (so it knows every take already on the Hub)."""
        return self._resumed

    def has_take(self, take_id: str) -> bool:
        """Whether this store holds `take_id`, on the Hub or waiting for it."""
        with self._lock:
            return take_id in self._known or take_id in self._spooled

    def safe_take_ids(self, take_ids: set[str]) -> set[str]:
        """Those of `take_ids` that no restart can lose: on the Hub (or, local-only, in the folder), or
        waiting on a disk that survives restarts (voxspace.storage)."""
        with self._lock:
            safe = {t for t in take_ids if t in self._known}
            if self.storage.survives_restart:
                safe |= {t for t in take_ids if t in self._spooled}
            return safe

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every spooled take is on the Hub; False if some are still pending."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._spooled and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.5))
            return not self._spooled

    # --- the Hub side ---------------------------------------------------------------------------
    def _try_resume(self) -> None:
        try:
            self._resume()
        except Exception as e:  # the Hub is down at sign-in: record, retry before the first push
            err = as_user_error(e, action="read your recordings from", repo_id=self.repo_id, retrying=True)
            self._last_error = err.user_message
            log.warning("resume of %s failed: %s", self.repo_id, err)

    def _resume(self) -> None:
        """Read the takes already in the repo, so counts, next phrase and seq continue from them."""
        with self._resume_lock:
            if not self._resumed:
                self._read_repo()

    def _read_repo(self) -> None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import RepositoryNotFoundError

        api = hub_api(self._identity, self.settings)
        try:
            info = api.dataset_info(self.repo_id)
        except RepositoryNotFoundError as e:
            if e.response is not None and e.response.status_code == 404:
                with self._lock:  # no repo (yet, or any more): nothing of this person is on the Hub
                    self._known, self._card_text, self._head = {}, None, None
                    self._resumed, self._repo_ready = True, False
                return
            raise
        paths = {s.rfilename for s in info.siblings or []}
        ledger = {t.metadata_path_in_repo: t for t in self._read_ledger()}
        known = {t.take_id: t for path, t in ledger.items() if path in paths}  # deleted on the Hub: gone
        wanted = [p for p in paths if _METADATA_PATH.fullmatch(p) and p not in ledger]
        wanted += ["README.md"] if "README.md" in paths else []
        cache = user_cache_dir(self.settings, self._identity)

        def fetch(path: str) -> tuple[str, str]:
            local = hf_hub_download(self.repo_id, path, repo_type="dataset", revision=info.sha,
                                    cache_dir=cache, token=self._identity.token or False,
                                    endpoint=self.settings.hub_endpoint)
            return path, Path(local).read_text(encoding="utf-8")

        with ThreadPoolExecutor(max_workers=8) as pool:
            found = dict(pool.map(fetch, wanted))
        fetched = [Take.from_row(json.loads(line)) for path, text in found.items() if path != "README.md"
                   for line in text.splitlines() if line.strip()]
        self._append_ledger(fetched)
        known.update((t.take_id, t) for t in fetched)
        with critical(self._critical), self._lock:
            self._known = known
            for take_id in known:  # pushed before a crash that came before the spool cleanup
                if take_id in self._spooled and self.is_pusher:
                    self._drop_from_spool(self._spooled.pop(take_id))
            self._card_text, self._head = found.get("README.md"), info.sha
            self._resumed = self._repo_ready = self._known_once = True
            if self.is_pusher:
                self._renumber_colliding()
            self._changed.notify_all()
        log.info("resumed %s: %d takes on the Hub, %d pending here", self.repo_id, len(known),
                 len(self._spooled))

    # The ledger: metadata rows of takes known to be on the Hub, so a sign-in on this disk only
    # downloads the metadata of takes it has not seen (one request instead of one per take).
    # A cache, not a record: losing it costs time, and the repo listing always has the last word.
    def _read_ledger(self, since: int = 0) -> list[Take]:
        """Rows from byte `since` on (only whole lines; the offset moves past them)."""
        try:
            with open(self._ledger, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]
        self._ledger_offset = since + len(whole)
        takes = []
        for line in whole.decode("utf-8", "replace").splitlines():
            try:
                takes.append(Take.from_row(json.loads(line)))
            except (ValueError, TypeError):  # a line torn by a crash
                continue
        return takes

    def _append_ledger(self, takes: Iterable[Take]) -> None:
        with critical(self._critical):
            self._write_ledger(takes)

    def _write_ledger(self, takes: Iterable[Take]) -> None:
        """Append rows in one write (call under `critical`)."""
        lines = "".join(t.metadata_line() for t in takes).encode("utf-8")
        if lines:
            fd = os.open(self._ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, lines)
            finally:
                os.close(fd)

    def _drop_from_spool(self, take: Take) -> None:
        shutil.rmtree(self.root / take.folder, ignore_errors=True)

    def _renumber_colliding(self) -> None:
        """When a pending take's seq is already a take on the Hub (another device recorded it), give
        it and every later pending take the next free seqs, in their order, on disk first. Call under
        `critical` and the lock, as the pusher."""
        on_hub = {t.seq for t in self._known.values()}
        pending = sorted(self._spooled.values(), key=lambda t: (t.seq, t.take_id))
        first = next((i for i, t in enumerate(pending) if t.seq in on_hub), None)
        if first is None:
            return
        free = 1 + max([*on_hub, *(t.seq for t in pending[:first])])
        for seq, take in enumerate(pending[first:], start=free):
            renumbered = replace(take, seq=seq)
            _rewrite_metadata(self.root, renumbered)
            self._spooled[take.take_id] = renumbered
        log.info("%d pending takes renumbered from %d (another device recorded takes meanwhile)",
                 len(pending) - first, free)

    def _push_once(self) -> None:
        if not self._resumed:
            self._resume()
        api = hub_api(self._identity, self.settings)
        if not self._repo_ready:
            created = ensure_private_repo(api, self.repo_id, repo_type="dataset")
            self._repo_ready = True
            if created and self._known_once:
                self._notice = (f"Your dataset repo {self.repo_id} was gone from the Hub (deleted?), so it "
                                "was created again, private, and your waiting takes were pushed to it.")
            if self._head is None:  # created just now, here or by another device: read where it stands
                self._read_repo()
        for _ in range(MAX_CONFLICTS):
            try:
                batch = self._commit_batch(api)
            except HfHubHTTPError as e:
                if not is_conflict(e):
                    raise
                log.info("another device committed to %s meanwhile: reading it again", self.repo_id)
                self._read_repo()  # its takes, its card; our pending takes renumbered where they collide
                continue
            if batch:
                log.info("pushed %d takes to %s", len(batch), self.repo_id)
            return
        raise HubError(f"Another device is saving to {self.repo_id} at the same moment; your takes will be "
                       "retried.", detail=f"{MAX_CONFLICTS} commits in a row answered 412")

    def _commit_batch(self, api: HfApi) -> list[Take]:
        """Commit the oldest pending takes (and the card, when it changes) on top of the head this
        store knows; returns them ([] when nothing waits). A 412 (HfHubHTTPError) means another
        device committed first."""
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import RepositoryNotFoundError

        per_commit = max(1, (self.settings.commit_budget.max_files_per_commit - 1) // 2)  # wav + row; card
        with self._lock:
            batch = sorted(self._spooled.values(), key=lambda t: t.seq)[:per_commit]
            card = dataset_card(self._identity.username, [*self._known.values(), *batch], self.repo_id)
            parent = self._head
        if not batch:  # a re-read found them on the Hub (a commit whose answer was lost)
            return []
        ops = []
        for take in batch:
            folder = self.root / take.folder
            ops.append(CommitOperationAdd(take.wav_path_in_repo, str(folder / take.wav_name)))
            ops.append(CommitOperationAdd(take.metadata_path_in_repo, (folder / METADATA).read_bytes()))
        if card != self._card_text:
            ops.append(CommitOperationAdd("README.md", card.encode("utf-8")))
        message = f"Add take {batch[0].take_id}" if len(batch) == 1 else f"Add {len(batch)} takes"
        cap = self.settings.push_retry_max_s
        try:
            info = commit_with_retry(api, self.repo_id, ops, commit_message=message, attempts=3,
                                     base_delay_s=min(1.0, cap), max_delay_s=cap, parent_commit=parent)
        except RepositoryNotFoundError:  # deleted while we ran: read it again (gone), then re-create
            with self._lock:
                self._resumed = self._repo_ready = False
            raise
        finally:
            self._budget.spent()  # a failed try may have landed too (its answer lost)
        self._known_once = True
        with critical(self._critical), self._lock:  # a save's refresh sees all of it or none
            self._write_ledger(batch)
            self._card_text, self._head = card, info.oid
            for take in batch:
                self._known[take.take_id] = self._spooled.pop(take.take_id, take)
                self._drop_from_spool(take)
            self._last_error = None
            self._changed.notify_all()
        return batch

    def _due_in_s(self) -> float:
        """Real seconds until the pusher may send: the commit budget, or the backoff after a failure."""
        return max(0.0, self._budget.real_s(self._budget.wait_s()), self._retry_at - time.monotonic())

    def _run(self) -> None:
        failures = 0
        looked = time.monotonic()
        while not self._closed:
            if time.monotonic() - looked >= POLL_S:  # takes other processes added or pushed
                looked = time.monotonic()
                with critical(self._critical):  # never while a take is half-way into the spool
                    self._refresh_from_disk()
            if not self._pusher.held and not self._pusher.try_acquire():
                self._wake.wait(POLL_S)  # another process pushes this spool: watch it do so
                self._wake.clear()
                continue
            due = self._due_in_s() if self._spooled else None
            if due is None or due > 0:  # a Save or flush wakes us to look again, never to send early
                self._wake.wait(POLL_S if due is None else min(due, POLL_S))
                self._wake.clear()
                continue
            try:
                self._push_once()
                failures, self._retry_at = 0, 0.0
            except Exception as e:
                err = as_user_error(e, action="save your takes to", repo_id=self.repo_id, retrying=True)
                if isinstance(err, RateLimited):
                    self._budget.rate_limited(err.retry_after_s)
                    err = RateLimited(_waiting_sentence(err.retry_after_s), retry_after_s=err.retry_after_s,
                                      detail=err.detail)
                else:
                    failures += 1
                    self._retry_at = time.monotonic() + min(self.settings.push_retry_max_s,
                                                            0.5 * 2 ** (failures - 1))
                with self._lock:
                    self._last_error = err.user_message
                    self._changed.notify_all()
                log.warning("push to %s failed (%d in a row): %s", self.repo_id, failures, err)


def _duplicate(take: Take) -> DuplicateTake:
    when = time.strftime("%d %B %Y at %H:%M", time.localtime(take.created_at))
    return DuplicateTake(f"This audio is already stored as take {take.seq + 1} (“{take.text}”, saved "
                         f"{when}); it was not saved again.", take_id=take.take_id)


def _waiting_sentence(retry_after_s: float) -> str:
    """What the person reads while the Hub's hourly commit limit holds their takes back."""
    minutes = max(1, round(retry_after_s / 60))
    return (f"The Hub limits how often a repository can change, so your takes go up together in about "
            f"{minutes} minute{'s' if minutes != 1 else ''}.")


def recover_pending(settings: Settings) -> dict[str, int]:
    """Start-up: push every spool whose owner has a usable token now. Returns {repo_id: takes pending}.

    Locally that is the owner of HF_TOKEN / the cached login. In a Space no visitor token exists at
    start-up (none is ever stored), so spools wait for their owner's next sign-in; they are logged.
    """
    identity = None
    if not settings.in_space:
        try:
            identity = resolve_identity(settings)
        except VoxSpaceError as e:
            log.warning("pending takes not pushed at start-up: %s", e)
    started: dict[str, int] = {}
    for owner_file in sorted((Path(settings.data_dir) / "users").glob("*/*/owner.json")):
        owner = json.loads(owner_file.read_text())
        if owner.get("endpoint") != settings.hub_endpoint:
            continue
        pending = len(read_folder(owner_file.parent / "spool"))
        if not pending:
            continue
        if identity is not None and identity.signed_in and identity.username == owner["username"]:
            TakeStore.for_identity(settings, identity, owner["repo_id"])
            started[owner["repo_id"]] = pending
        else:
            log.info("%d takes for %s wait until %s signs in", pending, owner["repo_id"], owner["username"])
    return started


__all__ = ["StoreStats", "TakeStore", "dataset_card", "local_folder", "recover_pending",
           "write_take_durably"]
