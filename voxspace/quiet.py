"""Third-party output that says nothing a VoxSpace user can act on: filtered, or sent to the log.

Only messages checked to be harmless for how VoxSpace calls the library are listed; any other
warning still shows. `quiet_third_party()` runs once in the CLI and in the app at start-up.
"""

from __future__ import annotations

import logging
import sys
import warnings

# (category, message regex): seen on every run, with nothing for the user to do about them.
HARMLESS_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # peft asks transformers for the old name; VoxSpace never calls it (transformers 5.x).
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)


def quiet_third_party() -> None:
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


class _LogOnce:
    """A stand-in for print() inside one library: each distinct line goes to the log, once."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger, self.seen = logger, set()

    def __call__(self, *args: object, sep: str | None = " ", end: str | None = "\n", file=None,
                 flush: bool = False) -> None:
        if file not in (None, sys.stdout, sys.stderr):  # a real file the library writes: leave it
            print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        text = (sep if sep is not None else " ").join(str(a) for a in args).strip()
        if text and text not in self.seen:
            self.seen.add(text)
            self.logger.info("%s", text)


def prints_to_log(package: str) -> None:
    """Send `package`'s print() calls to the log, each distinct line once (trackio prints a banner
    on every init and finish: four times per training run)."""
    shim = _LogOnce(logging.getLogger(package))
    for name, module in list(sys.modules.items()):
        if module is not None and (name == package or name.startswith(package + ".")):
            current = getattr(module, "print", None)
            if not isinstance(current, _LogOnce):
                module.print = shim  # module globals come before builtins in name lookup
