"""The ``retention`` command line (DESIGN §5)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from pathlib import Path

from retention import dbt
from retention.config import DEMO_CUSTOMERS, GC_THRESHOLDS, Paths
from retention.dbt import TARGETS, resolve_target
from retention.errors import (
    UserError,
    damaged_database_advice,
    environment_advice,
    is_damaged_database,
    is_environment_error,
    is_out_of_memory,
    memory_advice,
)
from retention.locking import exclusive

# retention.pipeline (pandas, SciPy, DuckDB, Great Expectations: about 0.7 s) is imported once
# a command's dbt process, if it needs one, is already importing dbt on the other core

_output = threading.Lock()


class Stopped(KeyboardInterrupt):
    """SIGTERM (a service manager stopping the job, a scheduler's timeout, ``kill``): the
    command stops as Ctrl-C stops it."""


#: the stop signals received (``_stop``)
_signalled: list[int] = []


#: while set, a stop signal is remembered, not raised (``_deferred_stops``)
_deferring = threading.Event()


def _stop(signum: int, frame: object) -> None:
    _signalled.append(signum)
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the stop short
    if _deferring.is_set():
        return
    _raise_stop(signum)


def _raise_stop(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped


@contextlib.contextmanager
def _deferred_stops() -> Iterator[None]:
    """A stop signal that comes meanwhile takes effect at the end. For imports of native
    modules: DuckDB's (nanobind) aborts the interpreter ("Critical nanobind error", exit 134)
    when an exception is raised while it registers its types, and a scheduler's SIGTERM in a
    command's first second landed there."""
    _deferring.set()
    try:
        yield
    finally:
        _deferring.clear()
    if _signalled:
        _raise_stop(_signalled[0])


def _say(message: str) -> None:
    # validation and the release writer report from two threads: one line at a time
    with _output:
        print(message, flush=True)


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD") from None


def _date(text: str) -> date:
    return date.fromisoformat(_iso_date(text))


def _folder(text: str) -> Path:
    if not text.strip():  # an unset shell variable: not the current directory
        raise argparse.ArgumentTypeError("is empty: give a folder")
    return Path(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds, 0 or more")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retention",
        description="Customer-retention warehouse: generate, load, build, validate, publish, "
        "report.",
    )

    # the options every command shares, before the command or after it (`retention run
    # --data-dir D` as well as `retention --data-dir D run`); after it they have no default, so
    # as not to overwrite what was given before it
    def add_common_options(p: argparse.ArgumentParser, after_command: bool) -> None:
        def default(value: object) -> object:
            return argparse.SUPPRESS if after_command else value

        p.add_argument(
            "--data-dir",
            type=_folder,
            default=default(None),
            help="root for landing, warehouse, serving and reports "
            "(default: $RETENTION_DATA_DIR, else data/ in the project folder)",
        )
        p.add_argument(
            "-v", "--verbose", action="store_true", default=default(False), help="debug logging"
        )
        p.add_argument(
            "--wait",
            type=_seconds,
            default=default(0.0),
            metavar="SECONDS",
            help="if another command holds the data directory, wait this long (default: exit)",
        )

    add_common_options(parser, after_command=False)
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = functools.partial(sub.add_parser, parents=[common])

    gen = add_parser("generate", help="write realistic synthetic landing files")
    gen.add_argument("--customers", type=_positive_int, default=DEMO_CUSTOMERS)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--start", type=_date, default=date(2022, 1, 1), help="first signup day")
    gen.add_argument("--end", type=_date, default=date(2025, 12, 31), help="last day of history")
    gen.add_argument("--dirty-rate", type=_rate, default=0.0, help="share of defective extra rows")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument(
        "--daily-from",
        type=_date,
        metavar="D",
        help="write rows dated D or later as one file per day (to try incremental runs)",
    )
    gen.add_argument(
        "--replace",
        action="store_true",
        help="delete the landing files already there first (default: refuse)",
    )

    load = add_parser("load", help="load new landing files into raw.*")
    load.add_argument(
        "--target", choices=TARGETS, help="also ship raw.* to this dbt target (default: duckdb)"
    )

    def add_build_options(p: argparse.ArgumentParser, unit_tests: bool) -> None:
        p.add_argument(
            "--as-of",
            type=_iso_date,
            help="reporting date (default: the latest valid order's, or the last build's if later)",
        )
        p.add_argument("--target", choices=TARGETS, help="dbt target (default: duckdb)")
        p.add_argument("--full-refresh", action="store_true", help="rebuild incremental models")
        # dbt unit tests have fixed inputs: development and CI run them, production need not
        p.add_argument(
            "--unit-tests",
            action=argparse.BooleanOptionalAction,
            default=unit_tests,
            help=f"run the dbt unit tests (default: {'yes' if unit_tests else 'no'})",
        )

    build = add_parser("build", help="dbt build: models, CLV and all tests")
    add_build_options(build, unit_tests=True)
    build.add_argument("--select", help="dbt node selection (default: everything)")

    accept_shrink = {
        "action": "store_true",
        "help": "accept marts that lost more than half their rows since the last publish (a "
        "var or seed changed on purpose): they are not compared with the published copy",
    }
    validate = add_parser("validate", help="run the Great Expectations suites")
    validate.add_argument("--accept-shrink", **accept_shrink)
    add_parser("publish", help="atomically replace serving/ from the validated marts")
    add_parser("report", help="write the HTML report")

    run = add_parser("run", help="load, build, validate, publish, report")
    add_build_options(run, unit_tests=False)
    run.add_argument("--accept-shrink", **accept_shrink)

    demo = add_parser("demo", help="generate sample data if landing is empty, then run")
    demo.add_argument("--customers", type=_positive_int, default=DEMO_CUSTOMERS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        # on the handler too: a library that sets its own logger to INFO (Great Expectations)
        # would otherwise print through it
        handler.setLevel(level)
        logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(level)
    if args.data_dir:
        os.environ["RETENTION_DATA_DIR"] = str(args.data_dir.resolve())
    started = time.perf_counter()
    _signalled.clear()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _stop)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _stop)
    try:
        return _main(args, started)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(args: argparse.Namespace, started: float) -> int:
    try:
        paths = Paths.from_env()
        # the lock first: the dbt processes started under it share it (retention.locking)
        with (
            exclusive(paths, args.command, wait_seconds=args.wait, on_wait=_say),
            _early_dbt(args, paths) as warm,
        ):
            return _dispatch(args, paths, started, warm)
    except BaseException as exc:
        return _ended_by(exc, args)


def _ended_by(exc: BaseException, args: argparse.Namespace) -> int:
    """The exit status for a command that raised ``exc``, after saying what happened; raises
    ``exc`` again when it is a bug (its traceback is what a bug report needs)."""
    # DuckDB turns a signal into its own error ("Query interrupted"): hence _signalled
    stopping = isinstance(exc, KeyboardInterrupt) or bool(_signalled)
    terminated = isinstance(exc, Stopped) or signal.SIGTERM in _signalled
    broken_pipe = not stopping and isinstance(exc, BrokenPipeError)
    if broken_pipe:
        # its reader has gone (`retention run | head`): what is still printed goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # whatever ended it, its dbt build must not go on writing the warehouse after it
    try:
        builds = dbt.stop_started(_say)
    except KeyboardInterrupt:  # Ctrl-C again while dbt stops: it was killed instead
        builds, stopping, terminated, broken_pipe = 1, True, False, False
    also = " with the dbt build it had started" if builds else ""
    if stopping or broken_pipe:
        if broken_pipe:
            what, status = "stopped: its standard output was closed", signal.SIGPIPE
        elif terminated:
            what, status = "stopped (SIGTERM)", signal.SIGTERM
        else:
            what, status = "interrupted", signal.SIGINT
        serving = ""
        with contextlib.suppress(UserError, OSError):  # (a data directory that is refused)
            if Paths.from_env().serving.exists():
                serving = "; serving/ holds the last release that was published in full"
        try:
            print(
                f"{what}{also}{serving}.\n  what to do: run `retention {args.command}` again",
                file=sys.stderr,
                flush=True,
            )
        except BrokenPipeError:  # its errors went to the same closed pipe (`2>&1 | head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        return 128 + status
    if isinstance(exc, UserError):
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    explained = _machine_problem(exc, args.command)
    if explained is None:
        raise exc
    # the machine's problem or the data directory's, not a bug to trace
    logging.getLogger(__name__).debug("the error in full", exc_info=exc)
    print(f"error: {explained}", file=sys.stderr, flush=True)
    return 1


def _machine_problem(exc: BaseException, command: str) -> str | None:
    """What went wrong and what to do, for an error of the machine or the data directory (a
    damaged warehouse, no memory, a full disk, a file where a folder belongs); None for a bug."""
    where = os.environ.get("RETENTION_DATA_DIR")
    again = f"then run `retention {command}` again"
    if is_damaged_database(exc):
        return f"{exc}\n  {damaged_database_advice(where, str(exc))}"
    if is_out_of_memory(exc):
        fewer = " (or generate fewer --customers)" if command in ("generate", "demo") else ""
        # DuckDB's list of "Possible solutions" names its own settings, not the project's
        detail = " ".join(str(exc).split()).split(" Possible solutions:")[0]
        return f"out of memory ({detail or type(exc).__name__})\n  {memory_advice(again)}{fewer}"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        # (--data-dir, landing/<entity>)
        return (
            f"{exc}\n  what to do: a file stands where a folder is needed, at {exc.filename} or "
            "above it: move the file away, or give another --data-dir"
        )
    if is_environment_error(exc):
        return f"{exc}\n  {environment_advice(where, again)} (-v shows the traceback)"
    return None


def _early_dbt(args: argparse.Namespace, paths: Paths) -> AbstractContextManager:
    """For the commands that build on DuckDB, a dbt process started now (``dbt.warm_dbt``): it
    imports dbt (1.5 s of one core) while this one imports the pipeline (and, for `run`, loads),
    and runs the build's dbt command. Ended unused if the command stops before its build.
    Started once the data directory is locked, so that it shares the lock."""
    builds = args.command in ("build", "run", "demo")
    if builds and resolve_target(getattr(args, "target", None)) == "duckdb":
        return dbt.warm_dbt(paths, "duckdb")
    return nullcontext()


def _dispatch(
    args: argparse.Namespace, paths: Paths, started: float, warm: dbt.WarmDbt | None = None
) -> int:
    """Run one command (the data directory is locked by the caller; ``warm``: _early_dbt)."""
    with _deferred_stops():
        from retention import pipeline

    if args.command == "generate":
        summary = pipeline.generate_step(
            paths,
            args.customers,
            args.seed,
            args.start,
            args.end,
            args.dirty_rate,
            args.format,
            _say,
            daily_from=args.daily_from,
            replace=args.replace,
        )
        _say(f"wrote {len(summary.files)} files under {paths.landing}")
    elif args.command == "load":
        pipeline.load_step(paths, _say, target=args.target)
    elif args.command == "build":
        pipeline.build_step(
            paths,
            _say,
            as_of=args.as_of,
            target=args.target,
            full_refresh=args.full_refresh,
            select=args.select,
            unit_tests=args.unit_tests,
            warm=warm,
        )
    elif args.command in ("validate", "publish", "report") and resolve_target() != "duckdb":
        # these read the DuckDB warehouse: passing them would speak of marts the target's
        # build never touched
        raise UserError(
            f"`retention {args.command}` works on the DuckDB warehouse, and "
            f"RETENTION_DBT_TARGET is {resolve_target()}: on that target the marts are checked "
            "by the dbt tests of `retention build` and BI tools read its marts schema\n"
            "  what to do: unset RETENTION_DBT_TARGET to work on the DuckDB warehouse"
        )
    elif args.command == "validate":
        pipeline.validate_step(paths, _say, accept_shrink=args.accept_shrink)
    elif args.command == "publish":
        pipeline.publish_step(paths, _say)
    elif args.command == "report":
        pipeline.report_step(paths, _say)
    elif args.command == "run":
        pipeline.run(
            paths,
            _say,
            as_of=args.as_of,
            target=args.target,
            full_refresh=args.full_refresh,
            unit_tests=args.unit_tests,
            warm=warm,
            accept_shrink=args.accept_shrink,
        )
        if resolve_target(args.target) == "duckdb":
            _say(pipeline.outputs_message(paths))
    elif args.command == "demo":
        pipeline.demo(paths, _say, customers=args.customers, warm=warm)
        _say(pipeline.outputs_message(paths))
    _say(f"retention {args.command} finished in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
