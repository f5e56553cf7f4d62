"""Typed errors: the sentence a person reads is kept apart from the traceback an engineer reads.

Every failure a user can cause or meet is one subclass here. The UI shows `user_message` only;
logs get the full exception (with `detail`). Never put a token or other secret in either.
"""

from __future__ import annotations


class VoxSpaceError(Exception):
    """Base class. `user_message` is shown to the person; `detail` only goes to the log."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(user_message if detail is None else f"{user_message} ({detail})")
        self.user_message = user_message
        self.detail = detail

    def __reduce__(self) -> tuple:
        """Pickle with every attribute: a typed error must cross ZeroGPU's process boundary whole."""
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[VoxSpaceError], args: tuple, state: dict) -> VoxSpaceError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


# --- input the user gave us -------------------------------------------------------------------
class BadInput(VoxSpaceError):
    """A malformed file, field or name (csv/jsonl, repo id, phrase list...)."""


class BadRepoName(BadInput):
    """A repository id that the Hub would refuse."""


class BadTranscript(BadInput):
    """A transcript that cannot be the text of its recording (voxspace.input_checks)."""


class ControlCharacters(BadTranscript):
    """NUL, terminal escape codes or other control characters in a transcript: refused, not stripped."""


class TextDoesNotFitAudio(BadTranscript):
    """More characters than anyone can say in the recording's duration."""


class MissingAudio(BadInput):
    """A transcript line names an audio file that was not uploaded."""


class CorruptZip(BadInput):
    """A zip that fails its own integrity checks (CRC, sizes, truncated): nothing from it is used."""


class DuplicateTake(BadInput):
    """The same audio is already stored as a take: `take_id` names it."""

    def __init__(self, user_message: str, *, take_id: str, detail: str | None = None) -> None:
        super().__init__(user_message, detail=detail)
        self.take_id = take_id


# --- audio checks (voxspace.audio) ------------------------------------------------------------
class BadAudio(VoxSpaceError):
    """A take that failed a server-side check; the take is kept so the person can re-record."""

    code = "bad_audio"


class UnreadableAudio(BadAudio):
    code = "unreadable"


class NonFiniteAudio(BadAudio):
    code = "non_finite"


class TooShort(BadAudio):
    code = "too_short"


class TooLong(BadAudio):
    code = "too_long"


class TruncatedAudio(BadAudio):
    """A WAV/FLAC whose header promises more audio than the file holds."""

    code = "truncated"


class TooQuiet(BadAudio):
    code = "too_quiet"


class Clipped(BadAudio):
    code = "clipped"


# --- Hub and sign-in --------------------------------------------------------------------------
class AuthError(VoxSpaceError):
    """No usable token, or a token the Hub refused."""


class HubError(VoxSpaceError):
    """The Hub answered with an error we cannot fix by retrying."""


class RateLimited(HubError):
    """The Hub said "too many requests" (429): nothing may be sent before `retry_after_s` passed."""

    def __init__(self, user_message: str, *, retry_after_s: float, detail: str | None = None) -> None:
        super().__init__(user_message, detail=detail)
        self.retry_after_s = retry_after_s


# --- training and evaluation ------------------------------------------------------------------
class TrainError(VoxSpaceError):
    """Base for failures of a training run."""


class NotEnoughTakes(TrainError):
    pass


class BadHyperparameter(TrainError):
    pass


class ModelUnavailable(TrainError):
    """The base model cannot be had: a wrong id or folder, a gated repo, or no network and no copy."""


class OutOfGPUMemory(TrainError):
    pass


class QuotaExceeded(TrainError):
    pass


class SliceTimeout(TrainError):
    pass


class NaNLoss(TrainError):
    pass


class TakesChanged(TrainError):
    """A run's pinned takes are gone or differ from what it was started on (voxspace.pinning)."""


class GpuUnavailable(TrainError):
    """ZeroGPU had no GPU to give (none free, the queue timed out, or the session expired)."""


class SpaceGpuLimit(QuotaExceeded):
    """ZeroGPU charged the call to the Space, not to a visitor, and the Space's allowance is used up."""


class Busy(TrainError):
    """Another training run holds the GPU; the message says the person's place in the queue."""


# --- publishing and the demo Space (voxspace.publish, voxspace.demo) ----------------------------
class PublishError(VoxSpaceError):
    """Publishing the adapter or creating its demo failed in a way the person can act on."""


class NotBetter(PublishError):
    """The fine-tuned WER is not lower than the base model's: publishing needs an explicit 'anyway'."""


class NothingToPublish(PublishError):
    """The run folder holds no finished adapter (or no summary) to push."""


class NeedsReadToken(PublishError):
    """The adapter is private and no read-only token was given for the demo to read it with."""


class TokenNotAllowed(AuthError):
    """A token that must never be stored in a demo (write, OAuth, or the app's own token)."""
