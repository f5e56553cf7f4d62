"""Where takes wait for the Hub, and whether that place survives a restart.

Spaces no longer offer persistent storage (January 2026); a Storage Bucket (mutable, not versioned)
can be mounted into a Space as a volume (April 2026). So the data folder is one of:

- "bucket": in a Space, on a mounted volume (the data folder's nearest mount point is not the root
  file system). Pending takes survive a restart there.
- "ephemeral": in a Space, on its own disk. A restart wipes it, so every take not yet on the Hub
  is also kept in the visitor's browser (IndexedDB, voxspace.js; hands-free takes are handed back
  to the page, uploads kept by name: ui/unsent.py) and sent again on their next visit.
- "local": this computer's disk, run outside a Space.

`VOXSPACE_STORAGE=bucket|ephemeral` (Settings.storage) overrides the guess, e.g. for a mount the
check cannot see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from voxspace.settings import Settings

KINDS = ("bucket", "ephemeral", "local")


@dataclass(frozen=True)
class Storage:
    kind: str
    path: Path

    @property
    def survives_restart(self) -> bool:
        return self.kind != "ephemeral"

    def sentence(self) -> str:
        """What a person should know about where their unsent takes wait."""
        if self.kind == "bucket":
            return (f"Takes wait for the Hub on this Space's mounted storage bucket ({self.path}), which "
                    "survives restarts.")
        if self.kind == "ephemeral":
            return ("This Space has no mounted storage bucket: until a take is on the Hub, your browser "
                    "keeps a copy and sends it again if the Space restarts.")
        return f"Takes wait for the Hub in {self.path} on this computer."


def mount_point(path: Path) -> Path:
    """The nearest ancestor of `path` (or `path`) that is a mount point."""
    path = Path(os.path.abspath(path))
    for candidate in [path, *path.parents]:
        if candidate.exists() and os.path.ismount(candidate):
            return candidate
    return Path("/")


def detect(settings: Settings) -> Storage:
    """Which kind of storage holds settings.data_dir (see the module docstring)."""
    path = Path(settings.data_dir)
    if settings.storage in KINDS:
        return Storage(settings.storage, path)
    if not settings.in_space:
        return Storage("local", path)
    return Storage("bucket" if mount_point(path) != Path("/") else "ephemeral", path)


__all__ = ["KINDS", "Storage", "detect", "mount_point"]
