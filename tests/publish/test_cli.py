"""`python -m voxspace publish|demo` against the local Hub: same functions as the UI, no token echoed."""

from __future__ import annotations

import pytest

from voxspace.cli import main
from voxspace.demo import SECRET_TOKEN, VAR_ADAPTER

from .conftest import unique


@pytest.fixture
def as_alice(monkeypatch, hub, alice):
    monkeypatch.setenv("HF_TOKEN", alice.token)
    return alice


def test_cli_publish_previews_then_pushes(as_alice, hub, run_dir, capsys):
    name = unique("cli-voxtral")
    assert main(["publish", "--run", str(run_dir), "--repo", name, "--preview"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\n") and "model-index" in out
    assert not hub.repo_exists(f"alice/{name}")  # a preview pushes nothing

    assert main(["publish", "--run", str(run_dir), "--repo", name, "--public"]) == 0
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith(f"alice/{name}")
    assert not hub.is_private(f"alice/{name}")
    assert as_alice.token not in captured.out + captured.err


def test_cli_publish_errors_are_one_sentence(as_alice, tmp_path, capsys):
    assert main(["publish", "--run", str(tmp_path), "--repo", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: No training run found")
    assert main(["publish", "--run", str(tmp_path), "--repo", "a/b/c"]) == 2


def test_cli_without_a_token_says_how_to_sign_in(monkeypatch, hub, run_dir, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(run_dir / "no-token-here"))
    assert main(["publish", "--run", str(run_dir), "--repo", "x"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err


def test_cli_preview_needs_no_token(monkeypatch, hub, run_dir, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(run_dir / "no-token-here"))
    name = unique("no-token")
    assert main(["publish", "--run", str(run_dir), "--repo", name, "--preview"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\n") and "model-index" in out
    assert "Nothing has been pushed. Publishing would put" in out and f"your-username/{name}" in out
    assert "adapter_model.safetensors" in out and "README.md" in out
    assert not hub.repo_exists(f"your-username/{name}")


def test_cli_demo_stores_the_read_token_from_the_named_variable(as_alice, hub, hub_models, monkeypatch,
                                                                capsys):
    read_tok = f"hf_r_{unique('cli')}"
    hub.add_user(read_tok, "alice", role="read")
    monkeypatch.setenv("DEMO_READ_TOKEN", read_tok)
    space = f"alice/{unique('cli-demo')}"
    code = main(["demo", "--adapter", hub_models["private_adapter"], "--base-model", hub_models["base"],
                 "--space", space, "--read-token-env", "DEMO_READ_TOKEN"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "RUNNING" in captured.out and captured.out.rstrip().endswith(f"/spaces/{space}")
    assert hub.space_secrets(space) == {SECRET_TOKEN: read_tok}
    assert hub.space_variables(space)[VAR_ADAPTER] == hub_models["private_adapter"]
    assert read_tok not in captured.out + captured.err and as_alice.token not in captured.out + captured.err


def test_cli_demo_refuses_an_empty_token_variable_and_a_private_adapter_without_one(as_alice, hub_models,
                                                                                   monkeypatch, capsys):
    monkeypatch.delenv("EMPTY_VAR", raising=False)
    args = ["demo", "--adapter", hub_models["private_adapter"], "--base-model", hub_models["base"],
            "--no-follow"]
    assert main([*args, "--read-token-env", "EMPTY_VAR"]) == 2
    assert "EMPTY_VAR" in capsys.readouterr().err
    assert main(args) == 2
    assert "read-only token" in capsys.readouterr().err


def test_cli_publish_of_a_worse_model_needs_anyway(as_alice, hub, run_dir, capsys):
    from voxspace.run_record import RunRecord

    record = RunRecord.load(run_dir)
    record.eval.wer_after = 0.6
    record.save(run_dir)
    name = unique("cli-worse")
    assert main(["publish", "--run", str(run_dir), "--repo", name]) == 2
    assert "not better than the base model" in capsys.readouterr().err
    assert not hub.repo_exists(f"alice/{name}")
    assert main(["publish", "--run", str(run_dir), "--repo", name, "--anyway"]) == 0
    assert hub.repo_exists(f"alice/{name}")
