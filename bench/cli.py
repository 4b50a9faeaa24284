"""``python -m bench``: run sweeps, report, gate, time."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import BenchError

EXIT_USAGE = 2
INTERRUPTED = {"run": "interrupted: finished cells are stored; run the same command again to resume",
               "label": "interrupted: the answers given are stored; run the same command again to resume"}
"""What Ctrl-C leaves behind, by command (exit 130)."""


def _parser(labelled: tuple[str, ...]) -> argparse.ArgumentParser:
    """The command line; ``labelled``: the tasks ``label --task`` offers (registered with a ``render``)."""
    p = argparse.ArgumentParser(prog="python -m bench", description="rlhf-bench: sweeps, reports, gate, timings")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every cell of a sweep not already stored in --out")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--out", required=True, type=Path)
    run.add_argument("--executor", choices=("serial", "process", "dask"), default="serial")
    run.add_argument("--workers", type=int, default=None, help="worker processes (default: the cores)")
    run.add_argument("--address", default=None, help="dask scheduler address, e.g. tcp://HOST:8786")
    run.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    run.add_argument("--rerun-stale", action="store_true",
                     help="recompute stored cells made by other code or kernels, and delete stored cells "
                          "that are not in this config")
    run.add_argument("--no-progress", action="store_true")

    rep = sub.add_parser("report", help="write tables, figures and reports/README.md from a run")
    rep.add_argument("--run", required=True, type=Path, action="append",
                     help="run directory (repeat to merge runs, e.g. default and teachers)")
    rep.add_argument("--to", type=Path, required=True,
                     help="output directory: new, empty, or one rlhf-bench wrote (it has a manifest.json)")
    rep.add_argument("--workers", type=int, default=None,
                     help="processes the report's sections run in (default: the cores; the same files either way)")

    chk = sub.add_parser("check", help="compare a run with a committed baseline (exit 1 on regression)")
    chk.add_argument("--run", required=True, type=Path)
    chk.add_argument("--baseline", required=True, type=Path)

    base = sub.add_parser("baseline", help="write a baseline from a run (deliberate refresh)")
    base.add_argument("--run", required=True, type=Path)
    base.add_argument("--config", required=True, type=Path)
    base.add_argument("--out", required=True, type=Path)

    tim = sub.add_parser("timings", help="run the hot-path benchmarks and write reports/timings.*")
    tim.add_argument("--to", type=Path, required=True, help="output directory (as for report)")
    tim.add_argument("--quick", action="store_true", help="skip the references and the largest sizes")
    tim.add_argument("--from-json", type=Path, default=None,
                     help="rebuild the report from a saved pytest-benchmark JSON instead of rerunning")

    lab = sub.add_parser("label", help="label preference pairs yourself in the terminal (resumes in --out)")
    lab.add_argument("--task", choices=labelled, required=True)
    lab.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                     help="import MODULE first: a task registered there (with a render hook) can be labelled; "
                          "repeatable")
    lab.add_argument("--out", type=Path, required=True, help="the labels store's directory (one per labeller)")
    lab.add_argument("--pairs", type=int, default=30, help="pairs to answer (default 30); with --rank, rankings")
    lab.add_argument("--rank", type=int, default=None, metavar="K",
                     help="rank K segments at a time instead of answering pairs (2 to 4 grids, 2 to 6 strings): "
                          "press the items best first, = ties the next to the last, u undoes, q quits")
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("--vocab", default="ABC", help="strings: the tokens")
    lab.add_argument("--target", default="ABC", help="strings: the string the simulated truth rewards")
    lab.add_argument("--size", type=int, default=5, help="gridworld: the side N (at most 10)")
    lab.add_argument("--slip", type=float, default=0.0)
    lab.add_argument("--train", type=int, default=0, metavar="N",
                     help="show the learned string (or reward heatmap) after every N answers")
    lab.add_argument("--fit", action="store_true",
                     help="print which simulated teacher the stored answers resemble, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        labelled = _labelled_tasks(argv)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = _parser(labelled).parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "bench", *argv])     # recorded in stores and reports
    try:
        return _dispatch(args)
    except (BenchError, OSError) as exc:     # bad input or an unusable path: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(INTERRUPTED.get(args.command, "interrupted"), file=sys.stderr)
        return 130


def _labelled_tasks(argv: list[str]) -> tuple[str, ...]:
    """For ``label``: the registered tasks with a ``render`` hook, after importing the modules its
    ``--import`` names (so that ``--task`` can offer a task registered there); for other
    commands none are needed (and the library is not imported before the arguments are read)."""
    if argv[:1] != ["label"]:
        return ()
    import rlhf

    from .sweep.modules import ModuleImportError, import_modules
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--import", dest="imports", action="append", default=[])
    try:
        import_modules(early.parse_known_args(argv[1:])[0].imports)
    except ModuleImportError as exc:
        raise BenchError(f"--import {exc.module}: {exc.problem}") from None
    return rlhf.registered_tasks(render=True)


def _import_run_modules(run_dir: Path) -> None:
    """Import the modules a run's config named (``imports``, recorded in its store), so that the
    tasks its rows name are registered before a report or the gate reads them."""
    from .sweep.modules import ModuleImportError, import_modules, recorded_imports
    from .sweep.store import DB_NAME
    try:
        import_modules(recorded_imports(run_dir, DB_NAME))
    except ModuleImportError as exc:
        raise BenchError(f"{run_dir}: its config imports {exc.module}: {exc.problem}") from None


def _dispatch(args) -> int:
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise BenchError(f"--workers must be >= 1, got {args.workers}")
    if args.command == "run":
        from .sweep import config, engine
        cfg = config.load(args.config)          # validated before anything is written
        if args.executor == "dask":
            from .sweep.dask_executor import check_scheduler, require_dask
            require_dask()
            if args.address:
                check_scheduler(args.address)
        summary = engine.run_sweep(cfg, args.out, args.executor, args.workers, args.address, args.retry_failed,
                                  progress=not args.no_progress, rerun_stale=args.rerun_stale,
                                  command=args.command_line)
        print(summary.line())
        print(f"results: {args.out / 'results.sqlite'}; table: {args.out / engine.CSV_NAME}")
        return 0
    if args.command in ("report", "check", "baseline"):
        for run in args.run if isinstance(args.run, list) else [args.run]:
            _import_run_modules(run)
    if args.command == "report":
        from .report.build import write_report
        for path in write_report(args.run, args.to, command=args.command_line, workers=args.workers):
            print(path)
        return 0
    if args.command == "check":
        from .gate.check import run_check
        return run_check(args.run, args.baseline)
    if args.command == "baseline":
        from .gate.check import write_baseline
        write_baseline(args.run, args.config, args.out)
        print(f"baseline written: {args.out}")
        return 0
    if args.command == "timings":
        from .timings.report import run_timings
        for path in run_timings(args.to, quick=args.quick, from_json=args.from_json):
            print(path)
        return 0
    if args.command == "label":
        return _label(args)
    raise AssertionError(args.command)


HUMAN_EXTRA = ("textual",)
"""The ``human`` extra's packages (the labelling program's terminal UI)."""


def _require_human() -> None:
    """Import the labelling UI, or stop with one line saying how to install the ``human`` extra."""
    try:
        from .labelling import app  # noqa: F401
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in HUMAN_EXTRA:       # not the extra: a bug, shown as such
            raise
        why = "is not installed" if isinstance(exc, ModuleNotFoundError) else f"cannot be imported: {exc}"
        raise BenchError(f"label needs the human extra ({missing} {why}); install it with: "
                         "pip install -c constraints.txt -e \".[human]\"") from None


def _label(args) -> int:
    from rlhf.preferences.recorded import STORE_NAME

    from .labelling.session import Session, SessionSpec
    if args.pairs < 1:
        raise BenchError(f"--pairs must be >= 1, got {args.pairs}")
    if args.train < 0:
        raise BenchError(f"--train must be >= 0, got {args.train}")
    if args.seed < 0:
        raise BenchError(f"--seed must be >= 0, got {args.seed}")
    if args.fit and not (args.out / STORE_NAME).is_file():
        raise BenchError(f"--fit: {args.out} has no labels store ({STORE_NAME})")
    if args.rank is not None:
        return _label_rankings(args)
    if not args.fit:
        _require_human()                        # before the store exists
    spec = SessionSpec(task=args.task, pairs=args.pairs, seed=args.seed, vocab=args.vocab, target=args.target,
                       size=args.size, slip=args.slip)
    try:
        spec.make_task()                        # the task's own one-line checks, before the store exists
        session = Session(spec, args.out)
    except ValueError as exc:
        raise BenchError(str(exc)) from None

    def label() -> str:
        from .labelling.app import LabelApp
        LabelApp(session, train_every=args.train).run()
        return f"{session.answered}/{len(session.pairs)} pairs answered; labels in {args.out}"
    return _fit_or_label(session, args, label)


def _label_rankings(args) -> int:
    """``label --rank K``: the ranking program (:mod:`bench.labelling.rank_app`), or ``--fit`` of its store."""
    from .labelling.ranking import RankingSession, RankSpec
    spec = RankSpec(task=args.task, pairs=args.pairs, seed=args.seed, vocab=args.vocab, target=args.target,
                    size=args.size, slip=args.slip, rank=args.rank)
    try:
        spec.make_task()                        # the task's own one-line checks, before the store exists
        spec.check_rank()
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if not args.fit:
        _require_human()                        # before the store exists
    try:
        session = RankingSession(spec, args.out)
    except ValueError as exc:
        raise BenchError(str(exc)) from None

    def rank() -> str:
        from .labelling.rank_app import RankApp
        RankApp(session, train_every=args.train).run()
        return f"{session.answered}/{len(session.queries)} queries ranked; labels in {args.out}"
    return _fit_or_label(session, args, rank)


def _fit_or_label(session, args, label: Callable[[], str]) -> int:
    """``label --fit``: print the store's fit (one row per preference model, or per models that coincide);
    else run the labelling program (``label()``, which says what was labelled). Closes the session."""
    try:
        if args.fit:
            try:
                lines = session.fit_lines()
            except ValueError as exc:
                raise BenchError(f"{args.out}: {exc}") from None
            print("\n".join(lines))
        else:
            print(label())
        return 0
    finally:
        session.close()
