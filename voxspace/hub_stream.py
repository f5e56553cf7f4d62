"""Stream the rows of a Hub dataset without downloading it (phrase lists and audio imports).

`datasets` reads its endpoint once, at import, from HF_ENDPOINT; a caller that names another one
(the local Hub-API server in tests, a mirror) gets it for the duration of the iteration. Every
row is read with the caller's token: the visitor's own, never the Space's.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from voxspace.errors import BadInput, HubError

_endpoint_lock = threading.RLock()


@contextlib.contextmanager
def _endpoint(endpoint: str | None) -> Iterator[None]:
    import datasets.config as dconfig

    if endpoint is None or endpoint.rstrip("/") == dconfig.HF_ENDPOINT:
        yield
        return
    with _endpoint_lock:  # one process, one endpoint at a time
        before = dconfig.HF_ENDPOINT, dconfig.HUB_DATASETS_URL
        dconfig.HF_ENDPOINT = endpoint.rstrip("/")
        dconfig.HUB_DATASETS_URL = dconfig.HF_ENDPOINT + "/datasets/{repo_id}/resolve/{revision}/{path}"
        try:
            yield
        finally:
            dconfig.HF_ENDPOINT, dconfig.HUB_DATASETS_URL = before


def _reachable(repo_id: str, *, token: str | None, endpoint: str | None) -> None:
    """One metadata call without retries first: with no network, `datasets` retries for ~30 s and
    then raises a bare ConnectionError; this says so at once, in a sentence."""
    from huggingface_hub import HfApi

    from voxspace.hub import is_retryable

    try:
        HfApi(endpoint=endpoint, token=token or False).dataset_info(repo_id)
    except Exception as e:  # a 404 or a refusal is left to load_dataset's own, more precise errors
        if is_retryable(e) and getattr(e, "response", None) is None:
            raise HubError(f"Couldn't reach the Hugging Face Hub to read {repo_id}: check the network "
                           "connection, then try again.", detail=f"{type(e).__name__}: {e}") from e


def stream_rows(repo_id: str, *, config: str | None = None, split: str = "train",
                columns: tuple[str, ...] = (), audio_column: str | None = None,
                token: str | None = None, endpoint: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield rows one by one; `columns` must exist (BadInput names the ones that do).

    `audio_column`, when given, is left undecoded ({"bytes", "path"}; see read_audio_bytes):
    voxspace.audio decodes every take the same way, and one broken file then rejects one row
    instead of ending the stream inside datasets' decoder.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    where = repo_id + (f" ({config})" if config else "") + f", split {split!r}"
    _reachable(repo_id, token=token, endpoint=endpoint)
    with _endpoint(endpoint):
        try:
            ds = datasets.load_dataset(repo_id, config, split=split, streaming=True, token=token)
            wanted = list(dict.fromkeys([*columns, *([audio_column] if audio_column else [])]))
            missing = [c for c in wanted if ds.column_names is not None and c not in ds.column_names]
            if missing:
                raise BadInput(f"The dataset has no column {missing[0]!r}. Its columns are: "
                               f"{', '.join(ds.column_names or [])}.", detail=where)
            if ds.features:  # remote streams decode media in a thread pool by default: undo that
                ds = ds.decode(False)
            if wanted:  # and never read columns nobody asked for
                ds = ds.select_columns(wanted)
            yield from ds
        except (DatasetNotFoundError, FileNotFoundError) as e:
            raise HubError(f"Couldn't find the dataset {repo_id}. Check its id, and that you are "
                           "signed in with access to it if it is private or gated.",
                           detail=f"{where}: {type(e).__name__}: {e}") from e
        except HfHubHTTPError as e:
            raise HubError(f"The Hub refused to read {repo_id}. If it is private or gated, sign in "
                           "with an account that has access.", detail=f"{where}: {e}") from e
        except ValueError as e:
            if "parse error" in str(e).lower():  # pyarrow.ArrowInvalid: a bad line in the metadata
                raise _unreadable_metadata(repo_id, e, where) from e
            # unknown config or split
            raise BadInput(f"Couldn't open {repo_id} with that config and split: {e}".split("\n")[0],
                           detail=where) from e


def _unreadable_metadata(repo_id: str, e: Exception, where: str) -> BadInput:
    """`datasets` reads a split's metadata file whole: one bad line stops every row, so name it."""
    row = re.search(r"in row (\d+)", str(e))  # pyarrow counts from 0 and skips blank lines
    which = (f"line {int(row[1]) + 1} (blank lines not counted) of its metadata file" if row
             else "a line of its metadata file")
    reason = str(e).split(" in row")[0]
    return BadInput(f"The dataset {repo_id} cannot be read: {which} is malformed ({reason}). The "
                    "datasets library reads a split whole, so nothing was imported; fix that line (or ask "
                    "the dataset's owner to) and import again.", detail=f"{where}: {e}")


def read_audio_bytes(value: dict[str, Any], *, token: str | None = None,
                     endpoint: str | None = None) -> bytes:
    """The encoded file behind an undecoded Audio cell: inline bytes, or the file it points to."""
    from datasets import DownloadConfig
    from datasets.utils.file_utils import xopen

    if value.get("bytes"):
        return bytes(value["bytes"])
    path = value.get("path")
    if not path:
        raise BadInput("This row has no audio.")
    with _endpoint(endpoint):
        try:
            with xopen(path, "rb", download_config=DownloadConfig(token=token)) as f:
                return f.read()
        except (OSError, ValueError) as e:
            raise HubError("Couldn't download this row's audio from the Hub.",
                           detail=f"{path}: {e}") from e
