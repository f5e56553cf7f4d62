"""The Record tab's "Record more like these", without a browser: it lists the phrases holding the
words the last run got wrong, says why, and "Record these next" makes the first of them the next
phrase, which a saved take then records."""

from __future__ import annotations

import io
import subprocess

import soundfile as sf

from voxspace.phrases import parse_custom
from voxspace.run_record import EvalReport, RunRecord, TakeResult
from voxspace.ui import suggestions
from voxspace.ui.publish import runs_root
from voxspace.ui.record import refresh, save_take
from voxspace.ui.session import start_session


def _speech() -> bytes:
    out = subprocess.run(
        ["espeak-ng", "--stdout", "Siobhan is coming at noon"], check=True, capture_output=True
    ).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def test_suggestions_come_from_the_last_run_and_are_recorded_next(hub_settings):
    sess = start_session(hub_settings, profile=None, token=None)  # local folder mode
    assert sess.store is not None
    html, button = suggestions.panel(sess)
    assert "After your first training run" in html and button["visible"] is False
    assert "no suggested phrases" in suggestions.record_these(sess)

    sess.custom = parse_custom("Siobhan is coming at noon\nThe weather is fine today", "en")
    report = EvalReport(
        n_takes=1,
        wer_before=0.4,
        cer_before=0.1,
        wer_after=0.2,
        cer_after=0.05,
        per_take=[
            TakeResult(
                "t1",
                "Call Siobhan at <the> clinic",
                "call siobhan at the clinic",
                "call shivan at the clinic",
            )
        ],
    )
    RunRecord(base_model="b", dataset="d", config={}, languages=["en"], eval=report).save(
        runs_root(sess) / "run-1"
    )
    html, button = suggestions.panel(sess)
    assert button["visible"] is True
    assert html.index("Siobhan is coming at noon") < html.index("“siobhan”")  # first, with why
    assert "&lt;the&gt;" not in html and "<the>" not in html  # text is escaped (and "the" was right)

    assert "come next" in suggestions.record_these(sess)
    phrase, _, _ = refresh(sess, "en")
    assert "Siobhan is coming at noon" in phrase
    status, _, _, saved = save_take(sess, _speech())
    assert saved, status
    [take] = sess.store.takes()
    assert take.text == "Siobhan is coming at noon" and take.phrase_id == sess.custom[0].phrase_id
    html, _ = suggestions.panel(sess)  # recorded: no longer suggested
    assert "Siobhan is coming at noon" not in html
