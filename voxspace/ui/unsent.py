"""Takes the visitor's browser keeps until they are safe (the server side of voxspace.js's IndexedDB).

On a Space without a mounted Storage Bucket a restart wipes the disk, and with it every take not
yet on the Hub. So the page keeps a copy of each take it saves (IndexedDB, keyed by a random
`key`) and forgets it only once the server says the take is safe ("settled"): on the Hub, or on a
disk that survives restarts. A page that still holds takes when it loads sends them again: a take
the server already has is recognised by its audio fingerprint and text (store.DuplicateTake) and
settled, so a re-send does not store a take twice.

A hands-free take is cut from streamed chunks on the server, so the browser holds no file of it:
where a restart would lose it, `hand_back` gives the page the stored WAV under a key of the
server's, and the page keeps it like any other (voxspace.keepHandedBack). Uploaded files are kept
by name only (the person still has them): after a restart the page says which never reached the Hub.

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

from voxspace import audio, spontaneous
from voxspace.errors import DuplicateTake, VoxSpaceError
from voxspace.ingest import IngestRow
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

MAX_RESEND = 20  # takes re-sent per page load (the rest on the next one): bounded request size
KEEP_SETTLED = 200  # settled keys repeated in every receipt, so a missed refresh loses nothing
KEEP_JS = "(k) => { window.voxspace && voxspace.keepHandedBack(k); }"  # after a handler that hands back
RESEND_SOURCES = ("mic", spontaneous.SOURCE)  # what a kept take may say it was; anything else is "mic"


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


def _keeps_copies(sess: Session | None) -> bool:
    """Whether the page must keep what this visitor saves: a restart would wipe the disk it waits on."""
    return sess is not None and sess.store is not None and not sess.store.storage.survives_restart


def _kept_item(sess: Session, take_id: str, **fields: str) -> dict[str, str]:
    key = secrets.token_hex(16)
    remember(sess, key, take_id)
    return {"key": key, "takeId": take_id, **fields}


def hand_back(sess: Session | None) -> str:
    """The take the last save stored, as JSON for the page to keep ("" when it need not keep it:
    nothing was stored, or the disk survives restarts). The Session lets go of the WAV here."""
    saved = sess.last_saved if sess is not None else None
    if sess is not None:
        sess.last_saved = None
    if saved is None or not _keeps_copies(sess):
        return ""
    take, wav = saved
    return json.dumps(_kept_item(sess, take.take_id, text=take.text, lang=take.language,
                                 phraseId=take.phrase_id, source=take.source,
                                 audio=base64.b64encode(wav).decode()))


def hand_back_uploads(sess: Session | None, rows: list[IngestRow]) -> str:
    """The uploaded files that became takes, by name only (the person still has the files), as JSON
    for the page to keep: after a restart it can say which never reached the Hub."""
    if not _keeps_copies(sess):
        return ""
    return json.dumps([_kept_item(sess, r.take_id, name=r.name) for r in rows if r.accepted and r.take_id])


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
    stored, resent, lost = 0, 0, []
    for item in items:
        key = str(item.get("key") or "") if isinstance(item, dict) else ""
        if not key:
            continue
        take_id = str(item.get("takeId") or "")
        if take_id and sess.store.has_take(take_id):  # handed back by this server, still held here
            remember(sess, key, take_id)
            continue
        if "name" in item:  # an uploaded file, kept by name: gone with the disk, unless the Hub
            if sess.store.resumed:  # was not read yet (then the page asks again next time)
                lost.append(str(item["name"]))
                remember(sess, key, None)
            continue
        resent += 1
        if resent > MAX_RESEND:
            continue
        try:
            wav = base64.b64decode(item.get("audio") or "", validate=True)
            clean = audio.prepare_take(wav, sess.settings.limits)
            source = item.get("source") if item.get("source") in RESEND_SOURCES else "mic"
            take = sess.store.save(clean.wav_bytes(), clean.duration, text=str(item.get("text") or ""),
                                   language=str(item.get("lang") or ""),
                                   phrase_id=str(item.get("phraseId") or ""),
                                   source=source,
                                   duplicates="resend")
            remember(sess, key, take.take_id)
            stored += 1
        except DuplicateTake as e:  # the server has it already: keep the key until that take is safe
            remember(sess, key, e.take_id)
        except (VoxSpaceError, binascii.Error, ValueError) as e:  # cannot ever be stored: let it go
            log.info("a take kept in the browser was refused: %s", e)
            remember(sess, key, None)
    log.info("page re-sent %d kept takes, %d stored anew, %d uploads lost", resent, stored, len(lost))
    sentences = []
    if stored:
        sentences.append(f"{stored} take{'s' if stored != 1 else ''} your browser kept (not yet on the Hub "
                         f"when the page was last open) {'were' if stored != 1 else 'was'} saved again.")
    if lost:
        names = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        sentences.append(f"{len(lost)} uploaded file{'s' if len(lost) != 1 else ''} had not reached the Hub "
                         f"when this Space restarted, so {'they are' if len(lost) != 1 else 'it is'} not "
                         f"stored: {names}. Please upload {'them' if len(lost) != 1 else 'it'} again.")
    if not sentences:
        return gr.skip(), receipts_html(sess)
    return status_html("error" if lost else "saved", " ".join(sentences)), receipts_html(sess)


__all__ = ["KEEP_JS", "MAX_RESEND", "hand_back", "hand_back_uploads", "receipts_html", "remember", "resend"]
