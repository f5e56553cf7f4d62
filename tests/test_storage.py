"""Where pending takes wait, and whether a restart keeps them: the app says which it has."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from voxspace.settings import Settings
from voxspace.storage import detect, mount_point
from voxspace.ui import progress


def _a_mount_other_than_root() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        where = Path(line.split()[1])
        if where != Path("/") and where.is_dir():
            return where
    raise AssertionError("no mount point besides / on this machine")


def test_a_space_tells_a_mounted_bucket_from_its_own_disk(tmp_path):
    space = Settings(data_dir=tmp_path, space_id="alice/voxspace")
    mounted = _a_mount_other_than_root()
    bucket = detect(replace(space, data_dir=mounted / "voxspace-not-created"))
    assert (bucket.kind, bucket.survives_restart) == ("bucket", True)
    assert "mounted storage bucket" in bucket.sentence()
    own_disk = detect(replace(space, data_dir=Path("/voxspace-nowhere/data")))  # only / above it
    assert (own_disk.kind, own_disk.survives_restart) == ("ephemeral", False)
    assert "your browser keeps a copy" in own_disk.sentence()
    assert mount_point(Path("/voxspace-nowhere/data")) == Path("/")
    assert mount_point(mounted / "a" / "b") == mounted


def test_locally_it_is_this_computer_and_an_override_wins(tmp_path):
    assert detect(Settings(data_dir=tmp_path)).kind == "local"
    forced = Settings.from_env({"VOXSPACE_STORAGE": "Ephemeral", "VOXSPACE_DATA_DIR": str(tmp_path)})
    assert detect(forced).kind == "ephemeral"


def test_the_page_says_where_waiting_takes_are_kept():
    on_disk = progress.hub_line(2, None, "alice/r", next_push_s=10.0, survives_restart=True)
    assert "safe on this machine" in on_disk
    in_browser = progress.hub_line(2, None, "alice/r", next_push_s=10.0, survives_restart=False)
    assert "your browser keeps a copy until they are on the Hub" in in_browser
    assert "safe on this machine" not in in_browser
