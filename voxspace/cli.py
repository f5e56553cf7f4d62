"""Headless VoxSpace: the same functions the UI calls.

    python -m voxspace data add|import|stats ...
    python -m voxspace train --data REPO_OR_DIR --base-model ID_OR_PATH --out DIR
    python -m voxspace evaluate ...
    python -m voxspace publish ... / python -m voxspace demo ...

Each area registers its own sub-commands below; errors print their user message and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from voxspace.errors import VoxSpaceError

log = logging.getLogger("voxspace")


def _register_data(sub: argparse._SubParsersAction) -> None:
    """`data add|upload|import|stats|push` (Record issue): the same TakeStore the Record tab uses."""
    data = sub.add_parser("data", help="your recordings: add, upload, import, stats, push")
    dsub = data.add_subparsers(dest="data_command", required=True)

    def with_repo(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--repo", help="dataset repo (default <you>/voxspace-recordings)")
        return p

    add = with_repo(dsub.add_parser("add", help="check one audio file and save it as a take"))
    add.add_argument("file", help="wav, flac, ogg, mp3, webm...")
    add.add_argument("--text", required=True, help="what is said in the file")
    add.add_argument("--language", default="", help="en, es, fr, pt, hi, de, nl, it (empty: auto)")
    add.add_argument("--phrase-id", default="", help="the phrase id, if it came from a phrase list")
    add.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the push")
    add.set_defaults(func=_data_add)

    stats = with_repo(dsub.add_parser("stats", help="takes, minutes of speech, splits, pending pushes"))
    stats.set_defaults(func=_data_stats)

    push = with_repo(dsub.add_parser("push", help="push pending takes (and local no-token takes) now"))
    push.add_argument("--folder", help="a folder of takes recorded with no token (default: the local one)")
    push.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the push")
    push.set_defaults(func=_data_push)

    from voxspace.ingest import add_import_command, add_upload_command

    add_upload_command(dsub)
    add_import_command(dsub)


def _store(args: argparse.Namespace):
    from voxspace.auth import resolve_identity
    from voxspace.settings import Settings
    from voxspace.store import TakeStore

    settings = Settings.from_env()
    return TakeStore.for_identity(settings, resolve_identity(settings), args.repo)


def _print_stats(store) -> None:
    s = store.stats()
    where = f"in {s.location} (local only: sign in or set HF_TOKEN, then `data push`)" if s.local_only \
        else f"in {s.location}"
    print(f"{s.takes} takes, {s.minutes:.1f} min of speech ({s.train} train, {s.test} test) {where}")
    if s.pending:
        print(f"{s.pending} takes saved here, not yet on the Hub")
    if s.last_error:
        print(f"last push problem: {s.last_error}")


def _say_who_pushes(store) -> None:
    """Beside a running app the CLI hands its takes over instead of pushing the same spool."""
    pid = store.stats().pushed_by_pid
    if pid is not None:
        print(f"Another VoxSpace process (pid {pid}) uploads this folder: your takes are handed to it, "
              "and this command waits until they are on the Hub.")


def _data_add(args: argparse.Namespace) -> int:
    from voxspace.audio import prepare_take

    store = _store(args)
    clean = prepare_take(args.file, store.settings.limits)
    take = store.save(clean.wav_bytes(), clean.duration, text=args.text, language=args.language,
                      phrase_id=args.phrase_id, source="upload")
    print(f"saved take {take.take_id} ({take.duration:.1f} s, {take.split})")
    _say_who_pushes(store)
    if not store.local_only and not store.flush(args.timeout):
        print("not on the Hub yet: it stays saved here and is pushed on the next run", file=sys.stderr)
    _print_stats(store)
    return 0


def _data_stats(args: argparse.Namespace) -> int:
    _print_stats(_store(args))
    return 0


def _data_push(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.local_only:
        from voxspace.errors import AuthError

        raise AuthError("Pushing needs a Hugging Face token: set HF_TOKEN or run `hf auth login`.")
    moved = store.push_local_folder(args.folder)
    if moved:
        print(f"moved {moved} local takes into the push queue")
    _say_who_pushes(store)
    ok = store.flush(args.timeout)
    _print_stats(store)
    return 0 if ok else 1


def _register_train(sub: argparse._SubParsersAction) -> None:
    """`train` and `evaluate` (Train issue)."""
    from voxspace.train_cli import register

    register(sub)


def _register_publish(sub: argparse._SubParsersAction) -> None:
    """`publish` and `demo` (Publish issue)."""
    p = sub.add_parser("publish", help="push a run's adapter and model card to your model repo")
    p.add_argument("--run", required=True, help="the training run folder (holds summary.json, adapter/)")
    p.add_argument("--repo", required=True, help="model repo id, e.g. me/voxtral-my-voice")
    p.add_argument("--public", action="store_true", help="make the repo public (default: private)")
    p.add_argument("--merged", action="store_true", help="also push a merged bf16 model (several GB)")
    p.add_argument("--per-take", action="store_true", help="include held-out transcripts in the card")
    p.add_argument("--preview", action="store_true",
                   help="print the model card and the files it would push; push nothing (needs no token)")
    p.add_argument("--anyway", action="store_true",
                   help="publish even if the adapter measured no better than the base model")
    p.set_defaults(func=_cmd_publish)

    d = sub.add_parser("demo", help="create a demo Space for a published adapter")
    d.add_argument("--adapter", required=True, help="the adapter's model repo id")
    d.add_argument("--base-model", required=True, help="the base model id the adapter was trained on")
    d.add_argument("--space", help="Space id (default: <you>/<adapter name>-demo)")
    d.add_argument("--dataset", help="recordings dataset id, linked from the demo's page")
    d.add_argument("--language", action="append", default=[], metavar="CODE",
                   help="a language the adapter was trained on (repeatable): the demo's default")
    d.add_argument("--public", action="store_true", help="make the Space public (default: private)")
    d.add_argument("--read-token-env", metavar="VAR",
                   help="environment variable holding a READ-ONLY token (needed if the adapter is private)")
    d.add_argument("--no-zero-gpu", action="store_true", help="do not request ZeroGPU hardware")
    d.add_argument("--no-follow", action="store_true", help="do not wait for the Space to build")
    d.set_defaults(func=_cmd_demo)


def _signed_in(settings):
    """The local token's identity; publishing and demos always act as someone."""
    from voxspace.auth import resolve_identity
    from voxspace.errors import AuthError

    identity = resolve_identity(settings)
    if not identity.signed_in:
        raise AuthError("Publishing needs a Hugging Face token: set HF_TOKEN or run `hf auth login`.")
    return identity


def _cmd_publish(args: argparse.Namespace) -> int:
    from voxspace.auth import resolve_identity
    from voxspace.publish import plan, publish_adapter
    from voxspace.settings import Settings

    settings = Settings.from_env()
    if args.preview:  # reading one's own card needs no token
        what = plan(args.run, args.repo, resolve_identity(settings), settings, private=not args.public,
                    include_per_take=args.per_take)
        print(what.card)
        print(f"\n# {what.summary()}")
        return 0
    identity = _signed_in(settings)
    res = publish_adapter(args.run, args.repo, identity, settings, private=not args.public,
                          merged=args.merged, include_per_take=args.per_take, progress=print,
                          anyway=args.anyway)
    print(res.url)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from voxspace.demo import create_demo_space, follow_build
    from voxspace.errors import BadInput
    from voxspace.settings import Settings

    read_token = None
    if args.read_token_env:
        read_token = os.environ.get(args.read_token_env)
        if not read_token:
            raise BadInput(f"The environment variable {args.read_token_env} is empty or not set.")
    settings = Settings.from_env()
    identity = _signed_in(settings)
    res = create_demo_space(identity, settings, args.adapter, args.base_model, space_id=args.space,
                            private=not args.public, read_token=read_token, dataset=args.dataset,
                            hardware=None if args.no_zero_gpu else "zero-a10g", languages=args.language)
    print(f"Space {res.space_id} ({'private' if res.private else 'public'}), hardware: "
          f"{res.hardware or 'cpu-basic'}")
    if res.hardware_note:
        print(f"note: {res.hardware_note}")
    status = None
    if not args.no_follow:
        for status in follow_build(identity, settings, res.space_id):
            print(f"  {status.stage}")
    print(res.url)
    if status is not None and status.done and not status.ok:
        print(f"error: the Space stopped at {status.stage}: {status.message or 'see its logs'}",
              file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m voxspace", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    _register_data(sub)
    _register_train(sub)
    _register_publish(sub)
    return parser


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _NoTraceback(logging.Formatter):
    """The terminal gets one line per warning or error; tracebacks go to the log file (or -v)."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None,
                                        "stack_info": None})
        return super().format(record)


def setup_logging(verbose: bool) -> None:
    """Commands print their own progress lines, so the terminal shows only warnings (everything,
    with tracebacks, under -v); a command may add a log file (train: <out>/train.log)."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    short = _NoTraceback("%(levelname)s: %(message)s")
    console.setFormatter(logging.Formatter(LOG_FORMAT) if verbose else short)
    console.voxspace_cli = True  # type: ignore[attr-defined]
    root.addHandler(console)


def log_to_file(path) -> logging.Handler:
    """Everything (INFO and up, with tracebacks) also into `path`, for a report or a closer look."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.voxspace_cli = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from voxspace.quiet import quiet_third_party

    quiet_third_party()
    try:
        return int(args.func(args) or 0)
    except VoxSpaceError as e:
        log.info("command failed", exc_info=True)
        print(f"error: {e.user_message}", file=sys.stderr)
        if getattr(args, "log_file", None):
            print(f"details: {args.log_file}", file=sys.stderr)
        return 2
    finally:
        for h in logging.getLogger().handlers[:]:  # main() may run again in the same process (tests)
            if getattr(h, "voxspace_cli", False):
                logging.getLogger().removeHandler(h)
                h.close()
