"""Creating the demo Space against the local Hub-API server: template, variables, the read-only
secret rule, ZeroGPU granted or refused, and a build follower that never blocks."""

from __future__ import annotations

import pytest
from huggingface_hub import SpaceCard

from voxspace.auth import Identity
from voxspace.demo import (
    SECRET_TOKEN,
    TEMPLATE_DIR,
    VAR_ADAPTER,
    VAR_BASE,
    VAR_LANGUAGES,
    ZERO_GPU,
    create_demo_space,
    demo_status,
    follow_build,
)
from voxspace.errors import AuthError, NeedsReadToken, PublishError, TokenNotAllowed, VoxSpaceError

from .conftest import unique

BASE = "mistralai/Voxtral-Mini-3B-2507"


def _all_space_text(hub, space_id: str) -> str:
    files = b"".join(hub.read_file(space_id, p, repo_type="space") for p in
                     hub.list_files(space_id, repo_type="space"))
    return files.decode("utf-8", "replace") + repr(hub.space_variables(space_id))


def test_demo_space_holds_the_template_readme_and_variables(hub, alice, hub_settings, hub_models):
    space = f"alice/{unique('demo')}"
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE, space_id=space,
                            dataset="alice/voxspace-recordings")
    assert res.space_id == space and res.private and hub.is_private(space, repo_type="space")
    assert res.url == f"{hub.url}/spaces/{space}"
    assert {"app.py", "requirements.txt", "README.md"} <= set(hub.list_files(space, repo_type="space"))
    assert hub.read_file(space, "app.py", repo_type="space") == (TEMPLATE_DIR / "app.py").read_bytes()
    card = SpaceCard(hub.read_file(space, "README.md", repo_type="space").decode())
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.models == [hub_models["adapter"], BASE]
    assert card.data.datasets == ["alice/voxspace-recordings"]
    assert hub.space_variables(space) == {VAR_ADAPTER: hub_models["adapter"], VAR_BASE: BASE}
    assert hub.space_secrets(space) == {}  # a public adapter needs no token at all
    assert res.hardware == ZERO_GPU and res.hardware_note is None
    assert hub.space_hardware_requests(space) == [ZERO_GPU]
    assert not res.read_token_stored
    assert alice.token not in _all_space_text(hub, space)


def test_trained_languages_become_a_variable_and_a_stale_one_is_removed(hub, alice, hub_settings, hub_models):
    space = f"alice/{unique('demo')}"
    create_demo_space(alice, hub_settings, hub_models["adapter"], BASE, space_id=space,
                      languages=["hi", "EN", "", "xx", "hi"])
    assert hub.space_variables(space)[VAR_LANGUAGES] == "hi,en"  # unknown and repeated codes dropped
    create_demo_space(alice, hub_settings, hub_models["adapter"], BASE, space_id=space, languages=[])
    assert VAR_LANGUAGES not in hub.space_variables(space)  # the demo falls back to Auto-detect


def test_public_toggle_and_default_space_name(hub, alice, hub_settings, hub_models):
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE, private=False)
    assert res.space_id == "alice/publish-tiny-adapter-demo"
    assert not hub.is_private(res.space_id, repo_type="space")
    create_demo_space(alice, hub_settings, hub_models["adapter"], BASE)  # again, private this time
    assert hub.is_private(res.space_id, repo_type="space")


def test_status_of_a_space_you_cannot_see_is_a_sentence(hub, bob, hub_settings, hub_models, alice):
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE,
                            space_id=f"alice/{unique('demo-hidden')}")
    with pytest.raises(VoxSpaceError, match="Could not check the demo Space"):
        demo_status(bob, hub_settings, res.space_id)  # alice's private Space: bob gets a 404


def test_private_adapter_without_a_token_creates_nothing(hub, alice, hub_settings, hub_models):
    space = f"alice/{unique('demo-needs-token')}"
    with pytest.raises(NeedsReadToken) as e:
        create_demo_space(alice, hub_settings, hub_models["private_adapter"], BASE, space_id=space)
    assert "make the adapter public" in e.value.user_message and "read-only token" in e.value.user_message
    assert not hub.repo_exists(space, repo_type="space")


def test_a_write_token_is_refused_and_a_read_token_is_stored_as_a_secret(hub, alice, hub_settings,
                                                                      hub_models):
    write_tok, read_tok = f"hf_w_{unique('alice')}", f"hf_r_{unique('alice')}"
    hub.add_user(write_tok, "alice", role="write")
    hub.add_user(read_tok, "alice", role="read")
    space = f"alice/{unique('demo-private')}"
    for bad, why in ((write_tok, "'write' role"), (alice.token, "signed in with")):
        with pytest.raises(TokenNotAllowed, match=why):
            create_demo_space(alice, hub_settings, hub_models["private_adapter"], BASE, space_id=space,
                              read_token=bad)
    assert not hub.repo_exists(space, repo_type="space")

    res = create_demo_space(alice, hub_settings, hub_models["private_adapter"], BASE, space_id=space,
                            read_token=read_tok)
    assert res.read_token_stored
    assert hub.space_secrets(space) == {SECRET_TOKEN: read_tok}
    text = _all_space_text(hub, space)
    assert read_tok not in text and alice.token not in text and write_tok not in text
    log = hub.log_path.read_text()
    assert read_tok not in log and alice.token not in log


def test_oauth_tokens_never_reach_the_demo(hub, hub_settings, hub_models):
    oauth_tok = f"hf_oauth_{unique('alice')}"
    hub.add_user(oauth_tok, "alice", kind="oauth", scopes=("openid", "profile", "contribute-repos"))
    visitor = Identity("alice", oauth_tok, "oauth")
    other_oauth = f"hf_oauth2_{unique('alice')}"
    hub.add_user(other_oauth, "alice", kind="oauth", scopes=("openid",))
    space = f"alice/{unique('demo-oauth')}"
    for tok in (oauth_tok, other_oauth):
        with pytest.raises(TokenNotAllowed):
            create_demo_space(visitor, hub_settings, hub_models["private_adapter"], BASE, space_id=space,
                              read_token=tok)
    res = create_demo_space(visitor, hub_settings, hub_models["adapter"], BASE, space_id=space)
    assert hub.space_secrets(res.space_id) == {}
    assert oauth_tok not in _all_space_text(hub, space)


def test_a_read_token_that_cannot_read_the_adapter_or_is_invalid_is_refused(hub, alice, bob,
                                                                           hub_settings, hub_models):
    bob_read = f"hf_r_{unique('bob')}"
    hub.add_user(bob_read, "bob", role="read")
    with pytest.raises(TokenNotAllowed, match="cannot read"):
        create_demo_space(alice, hub_settings, hub_models["private_adapter"], BASE,
                          space_id=f"alice/{unique('d')}", read_token=bob_read)
    with pytest.raises(AuthError, match="did not accept"):
        create_demo_space(alice, hub_settings, hub_models["private_adapter"], BASE,
                          space_id=f"alice/{unique('d')}", read_token="hf_not_a_real_token")


def test_missing_adapter_is_a_clear_error(hub, alice, hub_settings):
    with pytest.raises(PublishError, match="publish it first"):
        create_demo_space(alice, hub_settings, "alice/never-published", BASE)


def test_a_local_base_folder_is_named_by_its_hub_id_or_refused(hub, alice, hub_settings, hub_models,
                                                                tmp_path):
    folder = tmp_path / "my-voxtral"
    folder.mkdir()
    with pytest.raises(PublishError, match="my-voxtral is a local folder"):
        create_demo_space(alice, hub_settings, hub_models["adapter"], str(folder))
    (folder / "config.json").write_text(f'{{"_name_or_path": "{BASE}"}}')
    space = f"alice/{unique('local-base')}"
    create_demo_space(alice, hub_settings, hub_models["adapter"], str(folder), space_id=space)
    assert hub.space_variables(space)[VAR_BASE] == BASE


def test_zerogpu_refusal_is_reported_not_raised(hub, bob, hub_settings, hub_tokens, tiny_adapter_dir):
    from huggingface_hub import HfApi

    adapter = f"bob/{unique('adapter')}"
    api = HfApi(endpoint=hub.url, token=hub_tokens["bob"])
    api.create_repo(adapter)
    api.upload_folder(repo_id=adapter, folder_path=tiny_adapter_dir)
    hub.refuse_hardware(ZERO_GPU, users={"bob"})  # only bob: the other tests keep ZeroGPU
    res = create_demo_space(bob, hub_settings, adapter, BASE)
    assert res.hardware is None
    assert "ZeroGPU" in res.hardware_note and "limit of ZeroGPU Spaces" in res.hardware_note
    assert hub.repo_exists(res.space_id, repo_type="space")  # the demo exists anyway, on CPU


def test_follow_build_yields_each_stage_until_running(hub, alice, hub_settings, hub_models):
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE,
                            space_id=f"alice/{unique('demo-build')}")
    hub.set_space_outcome(res.space_id, "RUNNING", polls=3)
    slept: list[float] = []
    stages = [s.stage for s in follow_build(alice, hub_settings, res.space_id, interval_s=7,
                                            sleep=slept.append)]
    assert stages[-1] == "RUNNING" and set(stages[:-1]) == {"BUILDING"}
    assert slept == [7] * (len(stages) - 1)  # it waits only between polls, through the given sleep


def test_follow_build_stops_on_error_with_the_message(hub, alice, hub_settings, hub_models):
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE,
                            space_id=f"alice/{unique('demo-broken')}")
    hub.set_space_outcome(res.space_id, "RUNTIME_ERROR", polls=1, message="Exit code: 1. out of memory")
    last = list(follow_build(alice, hub_settings, res.space_id, sleep=lambda s: None))[-1]
    assert last.done and not last.ok and last.message == "Exit code: 1. out of memory"
    assert demo_status(alice, hub_settings, res.space_id).stage == "RUNTIME_ERROR"


def test_a_space_without_an_app_file_ends_the_wait_at_once(hub, alice, hub_settings, hub_models):
    from huggingface_hub import SpaceStage

    assert SpaceStage.NO_APP_FILE.value == "NO_APP_FILE"  # the Hub's spelling, not NO_APP_FILES
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE,
                            space_id=f"alice/{unique('demo-noapp')}")
    hub.set_space_outcome(res.space_id, "NO_APP_FILE", polls=1)
    statuses = list(follow_build(alice, hub_settings, res.space_id, sleep=lambda s: None))
    assert statuses[-1].stage == "NO_APP_FILE" and statuses[-1].done and not statuses[-1].ok
    assert len(statuses) <= 3  # not 20 minutes of polling


def test_follow_build_gives_up_after_its_timeout(hub, alice, hub_settings, hub_models):
    res = create_demo_space(alice, hub_settings, hub_models["adapter"], BASE,
                            space_id=f"alice/{unique('demo-slow')}")
    hub.set_space_outcome(res.space_id, "RUNNING", polls=1000)
    statuses = list(follow_build(alice, hub_settings, res.space_id, timeout_s=0, sleep=lambda s: None))
    assert len(statuses) == 1 and not statuses[0].done
