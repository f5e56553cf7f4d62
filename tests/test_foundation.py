"""Settings, errors and the dataset layout: the pieces every later feature stands on."""

from pathlib import Path

from voxspace.errors import TooQuiet, VoxSpaceError
from voxspace.layout import Take, new_take_id, read_folder, split_for, write_take
from voxspace.settings import Limits, Settings


def test_settings_read_from_environment(tmp_path):
    s = Settings.from_env({"VOXSPACE_BASE_MODEL": "me/tiny", "VOXSPACE_DATA_DIR": str(tmp_path),
                           "HF_ENDPOINT": "http://127.0.0.1:9/", "SPACE_ID": "me/voxspace",
                           "VOXSPACE_MIN_SPEECH_S": "0.5", "VOXSPACE_CHECKPOINT_EVERY_S": "60"})
    assert s.base_model == "me/tiny"
    assert s.data_dir == tmp_path
    assert s.hub_endpoint == "http://127.0.0.1:9"
    assert s.in_space
    assert s.limits.min_speech_s == 0.5
    assert s.checkpoint_every_s == 60.0 and Settings.from_env({}).checkpoint_every_s == 300.0
    assert s.limits.max_take_s == Limits().max_take_s
    assert not Settings.from_env({}).in_space


def test_error_keeps_user_message_apart_from_detail():
    e = TooQuiet("Too quiet: move closer to the microphone.", detail="rms=-61 dBFS")
    assert isinstance(e, VoxSpaceError)
    assert e.user_message == "Too quiet: move closer to the microphone."
    assert "rms=-61" in str(e) and "rms" not in e.user_message


def test_held_out_share_is_deterministic_and_large_enough_early():
    marks = [split_for(i) for i in range(800)]
    assert marks == [split_for(i) for i in range(800)]
    assert marks[:12].count("test") >= 4
    assert 0.10 <= marks.count("test") / 800 <= 0.16
    for n in range(12, 800):  # at least 4 test takes at every size once 12 exist
        assert marks[:n].count("test") >= 4


def test_layout_round_trip_keeps_types_and_unicode(tmp_path: Path):
    takes = [Take(take_id=new_take_id() + str(i), text=t, language=lang, duration=d, phrase_id="p",
                  split=split_for(i), seq=i, created_at=1.0) for i, (t, lang, d) in
             enumerate([("hello there", "en", 2), ("नमस्ते दुनिया", "hi", 1.5), ("auto", "", 3.25)])]
    for t in takes:
        write_take(tmp_path, t, b"RIFF")
    back = read_folder(tmp_path)
    assert [b.take for b in back] == takes
    assert all(b.wav.read_bytes() == b"RIFF" for b in back)
    assert isinstance(back[0].take.duration, float)


def test_run_record_round_trip(tmp_path: Path):
    from voxspace.run_record import EvalReport, RunRecord, TakeResult

    rec = RunRecord(base_model="b", dataset="me/voxspace-recordings", config={"rank": 8},
                    languages=["en"], loss_history=[(1, 2.5), (2, 1.25)],
                    eval=EvalReport(n_takes=2, wer_before=0.5, cer_before=0.25, wer_after=0.25,
                                    cer_after=0.125, per_take=[TakeResult("t", "a b", "a", "a b")]))
    rec.save(tmp_path)
    back = RunRecord.load(tmp_path)
    assert back == rec
    assert back.eval.wer_relative_change == -0.5
