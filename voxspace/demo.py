"""Create the owner's demo Space from demo_template/ and follow its build until it runs.

    python -m voxspace demo --adapter me/voxtral-my-voice --base-model mistralai/Voxtral-Mini-3B-2507

The Space gets: the template (README front matter filled: title, models, datasets), the variables
ADAPTER_ID, BASE_MODEL_ID and TRAINED_LANGUAGES (the demo's default language: the prompt the adapter
was trained with), ZeroGPU hardware when the account may have it, and, only when the
adapter is private, a secret ADAPTER_READ_TOKEN holding a token checked to be read-only. The token
VoxSpace acts with (the visitor's OAuth token or the owner's write token) is never stored there.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from voxspace.errors import AuthError, NeedsReadToken, PublishError, TokenNotAllowed
from voxspace.hub import as_user_error, commit_with_retry, hub_api, validate_repo_id
from voxspace.settings import Settings

if TYPE_CHECKING:
    from voxspace.auth import Identity

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "demo_template"
TEMPLATE_FILES = ("app.py", "requirements.txt", "README.md")
ZERO_GPU = "zero-a10g"
VAR_ADAPTER, VAR_BASE, SECRET_TOKEN = "ADAPTER_ID", "BASE_MODEL_ID", "ADAPTER_READ_TOKEN"
VAR_LANGUAGES = "TRAINED_LANGUAGES"  # comma-separated codes, e.g. "hi,en"
# The Hub's SpaceStage values where a build has ended ("NO_APP_FILE", singular, is what it sends).
DONE_STAGES = {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE", "PAUSED",
               "STOPPED", "DELETING"}


@dataclass
class DemoResult:
    """The Space created. `hardware_note` says in words why ZeroGPU was not granted, if it was not."""

    space_id: str
    url: str
    private: bool
    hardware: str | None  # "zero-a10g" when granted, None when left on the free CPU
    hardware_note: str | None
    read_token_stored: bool


@dataclass
class DemoStatus:
    """One look at the Space's runtime; `done` once it runs or has failed."""

    space_id: str
    url: str
    stage: str
    message: str | None = None

    @property
    def done(self) -> bool:
        return self.stage in DONE_STAGES

    @property
    def ok(self) -> bool:
        return self.stage == "RUNNING"


def space_url(settings: Settings, space_id: str) -> str:
    return f"{settings.hub_endpoint}/spaces/{space_id}"


def _yaml_text(value: str) -> str:
    # Goes between double quotes in the README front matter: no quote, backslash or newline.
    return re.sub(r'["\\\n\r]+', " ", value).strip()[:80]


def render_template(adapter_id: str, base_model: str, *, title: str | None = None,
                    dataset: str | None = None) -> dict[str, bytes]:
    """The Space's files (repo path -> bytes) with README.md's front matter filled in."""
    from jinja2 import Environment, StrictUndefined

    files = {name: (TEMPLATE_DIR / name).read_bytes() for name in TEMPLATE_FILES}
    readme = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
        files["README.md"].decode())
    files["README.md"] = readme.render(
        title=_yaml_text(title or f"{adapter_id.split('/')[-1]} demo"),
        short_description=_yaml_text(f"Personal speech recognition with {adapter_id}")[:60],
        adapter_id=adapter_id, base_model=base_model, dataset=dataset,
    ).encode()
    return files


def trained_languages_value(languages: list[str] | None) -> str:
    """The TRAINED_LANGUAGES variable: known language codes in the run's order, comma-separated."""
    from voxspace.card import LANGUAGE_NAMES

    seen = [c for c in dict.fromkeys((c or "").strip().lower() for c in languages or []) if c]
    return ",".join(c for c in seen if c in LANGUAGE_NAMES)


def check_read_only_token(read_token: str, identity: Identity, settings: Settings,
                          adapter_id: str | None = None) -> None:
    """Refuse any token that could write, or that belongs to the app's session, before it is stored.

    Uses whoami's `auth` block when the endpoint gives one: a classic token must have role "read",
    a fine-grained one only `*.read` permissions, and OAuth tokens are refused outright. When
    `adapter_id` is given, the token must also be able to read it.
    """
    from huggingface_hub import HfApi

    if not read_token or not read_token.strip():
        raise TokenNotAllowed("Paste a read-only token, or make the adapter public.")
    if read_token == identity.token:
        raise TokenNotAllowed("That is the token VoxSpace is signed in with, which can write to your "
                              "account: create a separate read-only token for the demo.")
    api = HfApi(endpoint=settings.hub_endpoint, token=read_token, library_name="voxspace")
    try:
        info = api.whoami()
    except Exception as e:
        raise AuthError("The Hub did not accept that token: check it was copied whole.",
                        detail=type(e).__name__) from None
    auth = info.get("auth") or {}
    kind = auth.get("type")
    if kind == "oauth":
        raise TokenNotAllowed("That is a sign-in (OAuth) token: the demo needs a read-only access token.")
    role = (auth.get("accessToken") or {}).get("role")
    if role == "fineGrained":
        perms = {p for scope in (auth.get("accessToken") or {}).get("fineGrained", {}).get("scoped", [])
                 for p in scope.get("permissions", [])}
        perms |= set((auth.get("accessToken") or {}).get("fineGrained", {}).get("global", []))
        if any(not p.endswith(".read") for p in perms):
            raise TokenNotAllowed("That fine-grained token has more than read permissions: give the demo a "
                                  "token that can only read.")
    elif role is not None and role != "read":
        raise TokenNotAllowed(f"That token has the '{role}' role, so anyone with access to the demo's "
                              "settings could write to your account: create a read-only token instead.")
    elif role is None:
        log.info("the endpoint does not report token roles; storing the token unverified")
    if adapter_id is not None:
        try:
            api.model_info(adapter_id)
        except Exception as e:
            raise TokenNotAllowed(f"That token cannot read {adapter_id}: use a token of the adapter's "
                                  "owner (or of an account it is shared with).",
                                  detail=type(e).__name__) from None


def create_demo_space(identity: Identity, settings: Settings, adapter_id: str, base_model: str, *,
                      space_id: str | None = None, private: bool = True, read_token: str | None = None,
                      dataset: str | None = None, title: str | None = None,
                      hardware: str | None = ZERO_GPU, languages: list[str] | None = None) -> DemoResult:
    """Create (or update) the demo Space for `adapter_id` and start its build.

    A private adapter needs `read_token` (checked read-only, stored as a Space secret); a public
    one needs nothing and no token is stored. ZeroGPU is requested when `hardware` is set; a refusal
    is reported in `DemoResult.hardware_note`, not raised: the Space still works on CPU, slowly.
    `languages` (the run's training languages) become the demo's default language.
    """
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from voxspace.card import base_hub_id

    hub_base = base_hub_id(base_model)  # the Space loads the base from the Hub, never a local path
    if hub_base is None:
        raise PublishError(f"The base model {Path(base_model).name} is a local folder, and the demo Space "
                           "can only load a model from the Hub: give the Hub id of that model instead.")
    base_model = hub_base
    adapter_id = validate_repo_id(adapter_id, default_namespace=identity.username)
    space_id = validate_repo_id(space_id or f"{adapter_id.split('/')[-1]}-demo",
                                default_namespace=identity.username)
    api = hub_api(identity, settings)

    try:
        adapter_private = bool(api.model_info(adapter_id).private)
    except RepositoryNotFoundError:
        raise PublishError(f"The adapter {adapter_id} was not found: publish it first.") from None
    except HfHubHTTPError as e:
        raise as_user_error(e, action="read the adapter", repo_id=adapter_id) from e
    store_token = None
    if adapter_private:
        if not read_token:
            raise NeedsReadToken(
                f"The adapter {adapter_id} is private, so the demo cannot load it on its own. Either make "
                "the adapter public, or paste a read-only token (huggingface.co/settings/tokens, role "
                "'read') for the demo to keep as a secret.")
        check_read_only_token(read_token, identity, settings, adapter_id)
        store_token = read_token

    files = render_template(adapter_id, base_model, title=title, dataset=dataset)
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        if api.space_info(space_id).private != private:  # an existing Space gets the chosen visibility
            api.update_repo_settings(space_id, private=private, repo_type="space")
        api.add_space_variable(space_id, VAR_ADAPTER, adapter_id)
        api.add_space_variable(space_id, VAR_BASE, base_model)
        trained = trained_languages_value(languages)
        if trained:
            api.add_space_variable(space_id, VAR_LANGUAGES, trained)
        else:
            api.delete_space_variable(space_id, VAR_LANGUAGES)  # a stale one from an earlier adapter
        if store_token:
            api.add_space_secret(space_id, SECRET_TOKEN, store_token,
                                 description="read-only token for the private adapter")
        else:
            api.delete_space_secret(space_id, SECRET_TOKEN)  # a stale one from an earlier private run
    except HfHubHTTPError as e:
        raise as_user_error(e, action="create the demo Space", repo_id=space_id) from e

    granted, note = None, None
    if hardware:
        try:
            api.request_space_hardware(space_id, hardware)
            granted = hardware
        except HfHubHTTPError as e:
            reason = _server_message(e)
            note = (f"ZeroGPU ({hardware}) was not granted for {space_id}: {reason} The demo will run on "
                    "the free CPU, where a 3B model is very slow; free a ZeroGPU slot or upgrade, then "
                    "choose ZeroGPU in the Space's settings.")
            log.warning("%s", note)

    try:
        commit_with_retry(api, space_id,
                          [CommitOperationAdd(path_in_repo=k, path_or_fileobj=v) for k, v in files.items()],
                          repo_type="space", commit_message=f"Demo for {adapter_id} (VoxSpace)")
    except HfHubHTTPError as e:
        raise as_user_error(e, action="upload the demo app to", repo_id=space_id) from e
    return DemoResult(space_id=space_id, url=space_url(settings, space_id), private=private,
                      hardware=granted, hardware_note=note, read_token_stored=store_token is not None)


def _server_message(e: Exception) -> str:
    resp = getattr(e, "response", None)
    try:
        msg = resp.json().get("error") if resp is not None else None
    except ValueError:
        msg = None
    return (msg or str(e).splitlines()[0]).rstrip(".") + "."


def demo_status(identity: Identity, settings: Settings, space_id: str) -> DemoStatus:
    """One non-blocking look at the Space's build/runtime stage (for a UI timer)."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        runtime = hub_api(identity, settings).get_space_runtime(space_id)
    except HfHubHTTPError as e:
        raise as_user_error(e, action="check the demo Space", repo_id=space_id) from e
    message = (runtime.raw or {}).get("errorMessage")
    return DemoStatus(space_id=space_id, url=space_url(settings, space_id), stage=str(runtime.stage),
                      message=message)


def follow_build(identity: Identity, settings: Settings, space_id: str, *, interval_s: float = 5.0,
                 timeout_s: float = 1200.0,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[DemoStatus]:
    """Yield a DemoStatus per poll until the Space runs, fails, or `timeout_s` passes.

    A generator, so the CLI prints each stage and a Gradio handler can stream them; the last one
    yielded carries the link (and the error message if the build failed).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        status = demo_status(identity, settings, space_id)
        yield status
        if status.done or time.monotonic() >= deadline:
            return
        sleep(interval_s)
