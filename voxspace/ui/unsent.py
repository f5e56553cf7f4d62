"""Takes the visitor's browser keeps until they are safe (the server side of voxspace.js's IndexedDB).

On a Space without a mounted Storage Bucket a restart wipes the disk, and with it every take not
yet on the Hub. So the page keeps a copy of each take it saves (IndexedDB, keyed by a random
`key`) and forgets it only once the server says the take is safe ("settled"): on the Hub, or on a
disk that survives restarts. A page that still holds takes when it loads sends them again: a take
the server already has is recognised by its audio fingerprint and text (store.DuplicateTake) and
settled, so a re-send does not store a take twice.

A hands-free take is cut from streamed chunks on the server, so the browser holds no file of it:
where a restart would lose it, `hand_back` gives the page the stored WAV under a key of the
server's, and the page keeps it like any other (voxspace.keepHandedBack).

The receipts travel in a hidden HTML element (#vx-receipts, `data-settled="key key ..."`) that the
Save handler and the 2 s progress tick refresh; voxspace.js deletes the keys it lists.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from html import escape
from typing import Any

from voxspace import audio
from voxspace.errors import DuplicateTake, VoxSpaceError
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

MAX_RESEND = 20  # takes re-sent per page load (the rest on the next one): bounded request size
KEEP_SETTLED = 200  # settled keys repeated in every receipt, so a missed refresh loses nothing


def remember(sess: Session, key: str, take_id: str | None) -> None:
    """The browser holds `key`: it names `take_id` (None: nothing was stored, forget it at once)."""
    if not key:
        return
    if take_id is None:
        _settle(sess, key)
    else:
        sess.browser_takes[key] = take_id


def _settle(sess: Session, key: str) -> None:
    sess.browser_takes.pop(key, None)
    sess.settled_keys = [*[k for k in sess.settled_keys if k != key], key][-KEEP_SETTLED:]


def hand_back(sess: Session | None) -> str:
    """The take the last save stored, as JSON for the page to keep ("" when it need not keep it:
    nothing was stored, or the disk survives restarts). The Session lets go of the WAV here."""
    if sess is None:
        return ""
    saved, sess.last_saved = sess.last_saved, None
    if saved is None or sess.store is None or sess.store.storage.survives_restart:
        return ""
    take, wav = saved
    key = secrets.token_hex(16)
    remember(sess, key, take.take_id)
    return json.dumps({"key": key, "takeId": take.take_id, "text": take.text, "lang": take.language,
                       "phraseId": take.phrase_id, "audio": base64.b64encode(wav).decode()})


def receipts_html(sess: Session | None) -> str:
    """The keys the browser may forget now (takes safe on the Hub or on a lasting disk)."""
    if sess is not None and sess.store is not None:
        safe = sess.store.safe_take_ids(set(sess.browser_takes.values()))
        for key, take_id in list(sess.browser_takes.items()):
            if take_id in safe:
                _settle(sess, key)
    keys = " ".join(escape(k) for k in (sess.settled_keys if sess else []))
    return f'<div class="vx-receipts" data-settled="{keys}"></div>'


def resend(sess: Session | None, payload: str | None) -> tuple[Any, str]:
    """Store the takes a page kept from before (a restart, a closed tab). Returns (status, receipts)."""
    import gradio as gr

    try:
        items = json.loads(payload or "[]")
    except ValueError:
        items = []
    if sess is None or not sess.can_record or not isinstance(items, list) or not items:
        return gr.skip(), receipts_html(sess)  # not signed in yet: the browser keeps them for later
    stored = 0
    for item in items[:MAX_RESEND]:
        key = str(item.get("key") or "") if isinstance(item, dict) else ""
        if not key:
            continue
        take_id = str(item.get("takeId") or "")
        if take_id and sess.store.has_take(take_id):  # handed back by this server, still held here
            remember(sess, key, take_id)
            continue
        try:
            wav = base64.b64decode(item.get("audio") or "", validate=True)
            clean = audio.prepare_take(wav, sess.settings.limits)
            take = sess.store.save(clean.wav_bytes(), clean.duration, text=str(item.get("text") or ""),
                                   language=str(item.get("lang") or ""),
                                   phrase_id=str(item.get("phraseId") or ""), source="mic",
                                   duplicates="resend")
            remember(sess, key, take.take_id)
            stored += 1
        except DuplicateTake as e:  # the server has it already: keep the key until that take is safe
            remember(sess, key, e.take_id)
        except (VoxSpaceError, binascii.Error, ValueError) as e:  # cannot ever be stored: let it go
            log.info("a take kept in the browser was refused: %s", e)
            remember(sess, key, None)
    log.info("page re-sent %d kept takes, %d stored anew", len(items[:MAX_RESEND]), stored)
    if not stored:
        return gr.skip(), receipts_html(sess)
    message = (f"{stored} take{'s' if stored != 1 else ''} your browser kept (not yet on the Hub when the "
               "page was last open) {verb} saved again.").format(verb="were" if stored != 1 else "was")
    return status_html("saved", message), receipts_html(sess)


__all__ = ["MAX_RESEND", "hand_back", "receipts_html", "remember", "resend"]
