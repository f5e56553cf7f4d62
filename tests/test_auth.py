"""Whose token acts: the visitor's in a Space, this machine's locally, nobody's without one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from huggingface_hub.errors import HfHubHTTPError

from voxspace.auth import ANONYMOUS, MOCK_OAUTH_TOKEN, Identity, resolve_identity
from voxspace.errors import AuthError, BadRepoName
from voxspace.hub import default_dataset_repo, hub_api, user_cache_dir, validate_repo_id

pytestmark = pytest.mark.usefixtures("fresh_whoami_cache")


def test_local_run_ignores_gradios_mock_token_and_uses_hf_token_once(
    hub, hub_settings, hub_tokens, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    before = hub.calls("/api/whoami-v2")
    me = resolve_identity(hub_settings, oauth_username="alice", oauth_token=MOCK_OAUTH_TOKEN)
    assert (me.username, me.source, me.signed_in) == ("alice", "local", True)
    assert me.token == hub_tokens["alice"]
    assert hub_tokens["alice"] not in repr(me)
    assert resolve_identity(hub_settings) == me
    assert hub.calls("/api/whoami-v2") == before + 1  # cached per token


def test_no_token_at_all_means_nobody(hub_settings, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    me = resolve_identity(hub_settings, oauth_username="alice", oauth_token=MOCK_OAUTH_TOKEN)
    assert me == ANONYMOUS and not me.signed_in and me.source == "none"


def test_a_refused_token_is_an_auth_error_with_a_sentence(hub_settings, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_this_token_does_not_exist")
    with pytest.raises(AuthError) as e:
        resolve_identity(hub_settings)
    assert "token" in e.value.user_message and "hf_this_token" not in str(e.value)


def test_in_a_space_only_the_visitors_oauth_token_counts(hub, hub_settings, hub_tokens, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["spaceowner"])
    space = replace(hub_settings, space_id="spaceowner/voxspace")
    before = hub.calls("/api/whoami-v2")
    assert resolve_identity(space) == ANONYMOUS
    assert resolve_identity(space, oauth_username="bob", oauth_token=MOCK_OAUTH_TOKEN) == ANONYMOUS
    assert resolve_identity(space, oauth_username=None, oauth_token=hub_tokens["bob"]) == ANONYMOUS
    bob = resolve_identity(space, oauth_username="bob", oauth_token=hub_tokens["bob"])
    assert bob == Identity("bob", hub_tokens["bob"], "oauth")
    assert hub.calls("/api/whoami-v2") == before  # HF_TOKEN was never even checked


def test_anonymous_client_never_falls_back_to_an_ambient_token(hub, hub_settings, hub_tokens, monkeypatch):
    owner = Identity("spaceowner", hub_tokens["spaceowner"], "local")
    hub_api(owner, hub_settings).create_repo(
        "spaceowner/private-notes", repo_type="dataset", private=True, exist_ok=True
    )
    monkeypatch.setenv("HF_TOKEN", hub_tokens["spaceowner"])
    with pytest.raises(HfHubHTTPError) as e:
        hub_api(ANONYMOUS, hub_settings).dataset_info("spaceowner/private-notes")
    assert e.value.response.status_code == 401  # anonymous, although HF_TOKEN is set
    assert hub_api(Identity("bob", hub_tokens["bob"], "oauth"), hub_settings).whoami()["name"] == "bob"


def test_each_person_gets_their_own_download_cache(hub_settings, hub_tokens):
    a = user_cache_dir(hub_settings, Identity("alice", hub_tokens["alice"], "local"))
    b = user_cache_dir(hub_settings, Identity("bob", hub_tokens["bob"], "oauth"))
    anon = user_cache_dir(hub_settings, ANONYMOUS)
    assert len({a, b, anon}) == 3 and all(p.is_dir() for p in (a, b, anon))


@pytest.mark.parametrize(
    "name, why",
    [
        ("alice/a--b", "--"),
        ("alice/a..b", ".."),
        ("alice/.hidden", "valid"),
        ("alice/x.git", ".git"),
        ("a/b/c", "username/name"),
        ("alice/" + "n" * 97, "96"),
        ("alice/ünïcode", "valid"),
    ],
)
def test_repo_names_the_hub_would_refuse(name, why):
    with pytest.raises(BadRepoName, match=why):
        validate_repo_id(name)


def test_repo_name_defaults(hub_settings):
    assert validate_repo_id("my-takes", default_namespace="alice") == "alice/my-takes"
    assert validate_repo_id(" bob/x_1.v2 ") == "bob/x_1.v2"
    assert default_dataset_repo("alice", hub_settings) == f"alice/{hub_settings.dataset_repo_name}"


def test_commit_with_retry_commits_a_folder_after_server_errors(hub, hub_settings, hub_tokens, tmp_path):
    from huggingface_hub import CommitOperationAdd

    from voxspace.hub import commit_with_retry, ensure_private_repo, folder_operations

    (tmp_path / "adapter" / "nested").mkdir(parents=True)
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter" / "nested" / "weights.safetensors").write_bytes(b"\0" * 2048)
    (tmp_path / "adapter" / "optimizer.pt").write_bytes(b"skip me")
    api = hub_api(Identity("alice", hub_tokens["alice"], "local"), hub_settings)
    assert ensure_private_repo(api, "alice/retry-folder", repo_type="model")
    assert not ensure_private_repo(api, "alice/retry-folder", repo_type="model")
    ops = folder_operations(tmp_path / "adapter", path_in_repo="adapter", skip=lambda p: p.endswith(".pt"))
    hub.fail_next_commits(2)
    sleeps = []
    commit_with_retry(
        api, "alice/retry-folder", ops, commit_message="adapter", repo_type="model", sleep=sleeps.append
    )
    assert sleeps == [1.0, 2.0]
    assert hub.list_files("alice/retry-folder") == [
        ".gitattributes",
        "adapter/adapter_config.json",
        "adapter/nested/weights.safetensors",
    ]
    hub.fail_next_commits(1, status=403)
    with pytest.raises(HfHubHTTPError):  # not retryable: raised at once
        commit_with_retry(
            api,
            "alice/retry-folder",
            [CommitOperationAdd("new.txt", b"new")],
            commit_message="again",
            repo_type="model",
            sleep=sleeps.append,
        )
    assert sleeps == [1.0, 2.0]
