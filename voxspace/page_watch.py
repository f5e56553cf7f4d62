"""Which people have a VoxSpace page open in this process: a ZeroGPU run is paid from the visitor's
own daily quota, so it pauses at its next checkpoint once they have closed every page of theirs.

    page_watch.opened(identity, session_hash)  # the page loaded (demo.load)
    page_watch.closed(session_hash)            # Gradio's unload: the page's heartbeat connection ended
    page_watch.is_open("alice")                # any page of alice's still open?

Gradio ends a page's session when its heartbeat connection (/gradio_api/heartbeat) closes: the tab
closed, reloaded or navigated away, or the connection dropped (then the page is half gone anyway:
Gradio has cancelled its events). A paused run loses nothing: Resume continues from its checkpoint.
"""

from __future__ import annotations

import threading

from voxspace.auth import Identity

_lock = threading.Lock()
_pages: dict[str, str] = {}  # session hash -> owner


def opened(identity: Identity, session_hash: str | None) -> None:
    if session_hash:
        with _lock:
            _pages[session_hash] = identity.owner


def closed(session_hash: str | None) -> None:
    with _lock:
        _pages.pop(session_hash or "", None)


def is_open(owner: str) -> bool:
    with _lock:
        return owner in _pages.values()
