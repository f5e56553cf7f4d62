"""Stream the rows of a Hub dataset without downloading it (phrase lists and audio imports).

`datasets` reads its endpoint once, at import, from HF_ENDPOINT; a caller that names another one
(the local Hub-API server in tests, a mirror) gets it for the duration of the iteration. Every
row is read with the caller's token: the visitor's own, never the Space's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from voxspace.errors import BadInput, HubError

_endpoint_lock = threading.Lock()


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


def stream_rows(repo_id: str, *, config: str | None = None, split: str = "train",
                columns: tuple[str, ...] = (), audio_column: str | None = None,
                sample_rate: int = 16_000, token: str | None = None,
                endpoint: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield rows one by one; `columns` must exist (BadInput names the ones that do).

    `audio_column`, when given, is decoded and resampled to `sample_rate` by datasets' Audio
    feature (torchcodec + ffmpeg), so rows carry {"array", "sampling_rate"} there.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    where = repo_id + (f" ({config})" if config else "") + f", split {split!r}"
    with _endpoint(endpoint):
        try:
            ds = datasets.load_dataset(repo_id, config, split=split, streaming=True, token=token)
            missing = [c for c in columns if ds.column_names is not None and c not in ds.column_names]
            if missing:
                raise BadInput(f"The dataset has no column {missing[0]!r}. Its columns are: "
                               f"{', '.join(ds.column_names or [])}.", detail=where)
            wanted = list(dict.fromkeys([*columns, *([audio_column] if audio_column else [])]))
            if wanted:  # never decode (or download) columns nobody asked for
                ds = ds.select_columns(wanted)
            if audio_column:
                ds = ds.cast_column(audio_column, datasets.Audio(sampling_rate=sample_rate))
            yield from ds
        except (DatasetNotFoundError, FileNotFoundError) as e:
            raise HubError(f"Couldn't find the dataset {repo_id}. Check its id, and that you are "
                           "signed in with access to it if it is private or gated.",
                           detail=f"{where}: {type(e).__name__}: {e}") from e
        except HfHubHTTPError as e:
            raise HubError(f"The Hub refused to read {repo_id}. If it is private or gated, sign in "
                           "with an account that has access.", detail=f"{where}: {e}") from e
        except ValueError as e:  # unknown config or split
            raise BadInput(f"Couldn't open {repo_id} with that config and split: {e}".split("\n")[0],
                           detail=where) from e
