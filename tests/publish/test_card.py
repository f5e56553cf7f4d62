"""The model card: metadata the Hub indexes, numbers equal to the evaluation's, a body that is safe."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from huggingface_hub import ModelCard

from voxspace.card import (
    BASE_CONFIG,
    LOSS_PNG,
    LOSS_SVG,
    TUNED_CONFIG,
    base_model_license,
    build_card,
    card_files,
    extract_snippet,
    preview_card,
    usage_snippet,
)
from voxspace.loss_curve import loss_svg
from voxspace.run_record import EvalReport

from .conftest import make_record


def _metrics(card: ModelCard) -> dict[tuple[str, str], float]:
    return {(r.metric_config, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_card_parses_and_its_metrics_equal_the_evaluation(tmp_path):
    record = make_record()
    record.save(tmp_path)
    text = preview_card(tmp_path, "alice/voxtral-alice")
    (tmp_path / "README.md").write_text(text)
    card = ModelCard.load(tmp_path / "README.md")

    d = card.data
    assert d.base_model == "mistralai/Voxtral-Mini-3B-2507"
    assert d.library_name == "peft"
    assert d.pipeline_tag == "automatic-speech-recognition"
    assert d.language == ["en"]
    assert d.license == "apache-2.0"  # the fallback for Voxtral-Mini when the Hub is not asked
    assert d.datasets == ["alice/voxspace-recordings"]
    assert "voxspace" in d.tags
    ev = record.eval
    assert _metrics(card) == {(BASE_CONFIG, "wer"): ev.wer_before, (BASE_CONFIG, "cer"): ev.cer_before,
                              (TUNED_CONFIG, "wer"): ev.wer_after, (TUNED_CONFIG, "cer"): ev.cer_after}
    names = {r.metric_config: r.metric_name for r in card.data.eval_results}
    assert "base model" in names[BASE_CONFIG] and "fine-tuned" in names[TUNED_CONFIG]
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}

    body = card.text
    assert "| Base (mistralai/Voxtral-Mini-3B-2507) | 43.8% | 21.0% |" in body
    assert "| Fine-tuned (this adapter) | 12.5% | 6.2% |" in body
    assert "**-71.4%**" in body
    assert "42 (3.2 minutes of audio)" in body and "English" in body
    assert "## Limitations" in body and "## Privacy" in body
    assert f"]({LOSS_SVG})" in body


def test_card_never_shows_a_token_and_keeps_transcripts_out_by_default(tmp_path):
    make_record().save(tmp_path)
    text = preview_card(tmp_path, "alice/voxtral-alice")
    assert "must-not-appear" not in text and "hf_token" not in text
    assert "oven the door" not in text  # the person's own words stay out unless asked for
    with_rows = preview_card(tmp_path, "alice/voxtral-alice", include_per_take=True)
    assert "| take-1 | open the door | oven the door | open the door |" in with_rows


def test_unevaluated_adapter_reports_only_the_base_numbers():
    record = make_record(eval=EvalReport(n_takes=6, wer_before=0.5, cer_before=0.25))
    card = ModelCard(str(build_card(record, "alice/x", license="apache-2.0")))
    assert _metrics(card) == {(BASE_CONFIG, "wer"): 0.5, (BASE_CONFIG, "cer"): 0.25}
    assert "has not been evaluated yet" in card.text
    assert "Fine-tuned (this adapter)" not in card.text


def test_no_evaluation_means_no_model_index():
    card = ModelCard(str(build_card(make_record(eval=None), "alice/x", license="apache-2.0")))
    assert not card.data.eval_results
    assert "model-index" not in str(card)
    assert "has not been evaluated" in card.text


def test_local_base_model_and_dataset_stay_out_of_the_metadata(tmp_path):
    record = make_record(base_model=str(tmp_path), dataset=str(tmp_path), languages=[])
    card = ModelCard(str(build_card(record, "alice/x", license="other")))
    assert card.data.base_model is None and card.data.datasets is None and card.data.language is None
    assert "language=None" in extract_snippet(str(card))  # no language recorded: auto-detect
    assert f"Base ({tmp_path.name})" in card.text and f"Base ({tmp_path})" not in card.text


def test_a_local_base_folder_puts_neither_its_path_nor_a_broken_link_in_the_card(tmp_path):
    import json

    from voxspace.publish import published_adapter_config

    folder = tmp_path / "home" / "me" / "my-voxtral"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "voxtral"}))
    adapter_config = tmp_path / "adapter_config.json"
    adapter_config.write_text(json.dumps({"base_model_name_or_path": str(folder), "r": 8}))
    text = str(build_card(make_record(base_model=str(folder)), "alice/x", license="other"))
    assert str(tmp_path) not in text and "huggingface.co/my-voxtral" not in text
    assert "A LoRA adapter for `my-voxtral` (a local folder, not a Hub repo)" in text
    assert "the base model my-voxtral (a local folder, not a Hub repo): see its license." in text
    snippet = extract_snippet(text)
    assert '# put the path of your copy of that same model here.\nbase_id = "path/to/my-voxtral"' in snippet
    compile(snippet, "snippet", "exec")
    published = json.loads(published_adapter_config(adapter_config, str(folder)))
    assert published["base_model_name_or_path"] is None


@pytest.mark.parametrize("how", ["hf cache snapshot", "config _name_or_path"])
def test_a_local_copy_of_a_hub_model_is_named_by_its_hub_id(tmp_path, how):
    import json

    from voxspace.card import base_hub_id
    from voxspace.publish import published_adapter_config

    hub_id = "mistralai/Voxtral-Mini-3B-2507"
    if how == "hf cache snapshot":
        folder = tmp_path / "hub" / "models--mistralai--Voxtral-Mini-3B-2507" / "snapshots" / ("ab12" * 10)
        config = {"model_type": "voxtral"}
    else:
        folder = tmp_path / "voxtral-copy"
        config = {"model_type": "voxtral", "_name_or_path": hub_id}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    assert base_hub_id(str(folder)) == hub_id
    assert base_model_license(str(folder)) == "apache-2.0"  # the repo's license, not "other"
    card = ModelCard(str(build_card(make_record(base_model=str(folder)), "alice/x", license="apache-2.0")))
    assert card.data.base_model == hub_id
    assert str(tmp_path) not in str(card)
    link = f"[{hub_id}](https://huggingface.co/{hub_id})"
    assert f"A LoRA adapter for {link} (trained from a local copy)" in card.text
    assert f'base_id = "{hub_id}"' in extract_snippet(str(card))
    adapter_config = tmp_path / "adapter_config.json"
    adapter_config.write_text(json.dumps({"base_model_name_or_path": str(folder)}))
    published = json.loads(published_adapter_config(adapter_config, str(folder)))
    assert published["base_model_name_or_path"] == hub_id


def test_license_is_inherited_and_falls_back():
    class FakeInfo:
        card_data = type("C", (), {"license": "cc-by-nc-4.0"})()

    class FakeApi:  # stands in for HfApi.model_info; the Hub path is covered in test_publish_hub
        def model_info(self, repo_id):
            return FakeInfo()

    class DownApi:
        def model_info(self, repo_id):
            raise ConnectionError("offline")

    assert base_model_license("someone/base", FakeApi()) == "cc-by-nc-4.0"
    assert base_model_license("mistralai/Voxtral-Mini-3B-2507", DownApi()) == "apache-2.0"
    assert base_model_license("someone/unknown", DownApi()) == "other"
    assert base_model_license("mistralai/Voxtral-Mini-3B-2507") == "apache-2.0"


def test_loss_curve_is_valid_svg_and_skips_nan():
    svg = loss_svg([(1, 3.0), (2, float("nan")), (3, 1.0), (4, 0.5)])
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    points = root.find("s:polyline", ns).get("points").split()
    assert len(points) == 3
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] < ys[1] < ys[2]  # falling loss is drawn going down (SVG y grows downwards)
    with pytest.raises(ValueError):
        loss_svg([(1, float("nan"))])
    with pytest.raises(ValueError):
        loss_svg([])


@pytest.mark.parametrize("steps", [2, 3, 5, 7, 40, 137])
def test_loss_curve_step_labels_are_whole_distinct_and_evenly_spaced(steps):
    """Issue 16: three steps were labelled "1, 2, 2, 2, 3"."""
    root = ET.fromstring(loss_svg([(s, 1.0 / s) for s in range(1, steps + 1)]))
    ns = {"s": "http://www.w3.org/2000/svg"}
    labels = [t for t in root.findall("s:text", ns)
              if t.get("font-size") == "11" and t.get("text-anchor") == "middle"]  # the step axis
    values = [int(t.text) for t in labels]
    assert values == sorted(set(values)) and 1 <= len(values) <= 6
    assert all(1 <= v <= steps for v in values)
    xs = [float(t.get("x")) for t in labels]
    gaps = {round(b - a, 1) for a, b in itertools.pairwise(xs[1:])}  # after a possible first-step label
    assert len(gaps) <= 1
    if steps <= 5:
        assert values == list(range(1, steps + 1))


def test_card_files_prefer_the_runs_own_png_and_omit_an_empty_curve(tmp_path):
    make_record().save(tmp_path)
    (tmp_path / LOSS_PNG).write_bytes(b"\x89PNG fake")
    files = card_files(tmp_path, "alice/x", license="apache-2.0")
    assert files.images == {LOSS_PNG: b"\x89PNG fake"}
    assert f"]({LOSS_PNG})" in files.readme

    empty = tmp_path / "empty"
    make_record(loss_history=[]).save(empty)
    files = card_files(empty, "alice/x", license="apache-2.0")
    assert files.images == {} and "![" not in files.readme


def test_snippet_in_the_card_is_the_usage_snippet_and_compiles(tmp_path):
    make_record(languages=["fr", "en"]).save(tmp_path)
    text = preview_card(tmp_path, "alice/voxtral-alice")
    snippet = extract_snippet(text)
    assert snippet == usage_snippet("mistralai/Voxtral-Mini-3B-2507", "alice/voxtral-alice", "fr")
    compile(snippet, "snippet", "exec")
    assert 'language="fr"' in snippet and 'adapter_id = "alice/voxtral-alice"' in snippet
    with pytest.raises(ValueError):
        extract_snippet("# no code here")


LM_ONLY = "the language model only (the audio encoder and projector are unchanged)"
TOP_4 = "the language model, the top 4 audio-encoder layers (attention and MLP) and the audio projector"


@pytest.mark.parametrize(("config", "says"), [({"rank": 8}, LM_ONLY), ({"adapt_encoder": 0}, LM_ONLY),
                                              ({"adapt_encoder": 4}, TOP_4)])
def test_card_says_which_parts_of_the_model_were_adapted(config, says):
    text = str(build_card(make_record(config=config), "alice/x", license="apache-2.0"))
    assert f"LoRA on {says}." in text


def test_loss_curve_draws_the_held_out_loss_and_rings_the_kept_epoch():
    svg = loss_svg([(1, 3.0), (2, 2.0), (3, 1.0), (4, 0.5)], heldout=[(2, 2.5), (4, 2.8)], best_step=2)
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    train_line, held_line = root.findall("s:polyline", ns)
    assert len(train_line.get("points").split()) == 4 and len(held_line.get("points").split()) == 2
    assert held_line.get("stroke-dasharray")
    rings = [c for c in root.findall("s:circle", ns) if c.find("s:title", ns) is not None]
    assert len(rings) == 1 and rings[0].get("cx") == held_line.get("points").split()[0].split(",")[0]
    assert "held-out (each epoch)" in svg


def test_card_names_the_kept_epoch_the_dataset_commit_and_the_measured_precision():
    record = make_record(heldout_loss_history=[(40, 1.2), (80, 1.1), (120, 1.3)], best_step=80,
                         stopped_early=True, dataset_revision="0123abcd" * 5)
    record.eval.base_precision = "bf16"
    body = build_card(record, "alice/voxtral-alice", license="apache-2.0").text
    assert "The adapter is the one from step 80" in body and "of the 3 epochs" in body
    assert "training stopped early" in body
    assert f"`{'0123abcd' * 5}`" in body
    assert "loaded in bf16, as the demo Space and the snippet below load it" in body
    record.eval.base_precision = "8bit"
    body = build_card(record, "alice/voxtral-alice", license="apache-2.0").text
    assert "loaded in 8bit; the demo Space and the snippet below load it in bf16" in body
    assert "did not improve" not in body  # 12.5% is better than 43.8%


def test_card_of_a_model_no_better_than_the_base_says_so():
    record = make_record()
    record.eval.wer_after = 0.5
    body = build_card(record, "alice/voxtral-alice", license="apache-2.0").text
    assert "did not improve on the base model" in body and "WER 50.0% against 43.8%" in body
