"""Workflow commands: test (run, register, ls, rm, log), creator, cascade, bisect.

Test, factory and creation functions are import paths (``pkg.module:function``); the
current folder is importable while these commands run, as with ``python -m``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._command import command
from ._output import CliError, UsageError, emit, table
from ._repo import importable_cwd, open_repo


def register(sub: Any) -> None:
    p = command(
        sub,
        "test",
        cmd_test_run,
        help="run the tests registered on the graph (or register, list, remove them)",
        description=(
            "Without an action: run the registered tests on the latest version of every "
            "model they select (or on --models), store each result against the exact "
            "version it ran on, and print a table. Exit status 1 when a test fails.\n\n"
            "A test is a function `fn(model) -> float | bool` named by import path "
            "(pkg.module:function); `model` is the state_dict, or the nn.Module built by "
            "the registered factory. It is imported and run only here, never pickled."
        ),
        epilog=(
            "examples:\n"
            "  modelgit test register acc mytests:accuracy --threshold 0.9\n"
            "  modelgit test register loss mytests:loss --lower-is-better --threshold 0.5 "
            "--models descendants:base\n"
            "  modelgit test\n"
            "  modelgit test --models chat@2 --tests acc --json\n"
            "  modelgit test ls\n"
            "  modelgit test log chat\n"
            "  modelgit test rm loss"
        ),
    )
    _run_options(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))

    r = command(
        actions,
        "run",
        cmd_test_run,
        help="run tests (the default action)",
        description="Run registered tests and store their results.",
        epilog="examples:\n  modelgit test run --models base chat@1",
    )
    _run_options(r)

    r = command(
        actions,
        "register",
        cmd_test_register,
        help="register a test",
        description=(
            "Register test NAME: the function FN (pkg.module:function) returns a float "
            "(a metric) or a bool (a verdict). A float passes when there is no --threshold, "
            "or it is >= the threshold (--higher-is-better, default) or <= it "
            "(--lower-is-better, for losses). FN is not imported here."
        ),
        epilog=(
            "examples:\n"
            "  modelgit test register acc mytests:accuracy --threshold 0.9\n"
            "  modelgit test register ppl mytests:perplexity --lower-is-better "
            "--models relation:finetune\n"
            "  modelgit test register ok mytests:no_nans --models base chat"
        ),
    )
    r.add_argument("name", metavar="NAME", help="the test's name")
    r.add_argument("fn", metavar="FN", help="import path: pkg.module:function")
    r.add_argument(
        "--models",
        nargs="+",
        metavar="SEL",
        help="what it runs on: model names, relation:R, descendants:X (default: every model)",
    )
    goal = r.add_mutually_exclusive_group()
    goal.add_argument(
        "--higher-is-better",
        dest="higher_is_better",
        action="store_true",
        default=True,
        help="larger values are better (default)",
    )
    goal.add_argument(
        "--lower-is-better",
        dest="higher_is_better",
        action="store_false",
        help="smaller values are better (a loss)",
    )
    r.add_argument("--threshold", type=float, metavar="X", help="the pass mark")
    r.add_argument(
        "--factory", metavar="FN", help="pkg.module:function building the nn.Module to load into"
    )
    r.add_argument("--replace", action="store_true", help="replace a test of the same name")

    command(
        actions,
        "ls",
        cmd_test_ls,
        help="list registered tests",
        description="List the registered tests.",
        epilog="examples:\n  modelgit test ls --json",
    )

    r = command(
        actions,
        "rm",
        cmd_test_rm,
        help="unregister a test and delete its results",
        description=(
            "Unregister test NAME (its stored results are deleted too, unless --keep-results)."
        ),
        epilog="examples:\n  modelgit test rm acc\n  modelgit test rm acc --keep-results",
        json=False,
    )
    r.add_argument("name", metavar="NAME")
    r.add_argument(
        "--keep-results",
        action="store_true",
        help="keep its stored results (`modelgit test log` still shows them)",
    )

    r = command(
        actions,
        "log",
        cmd_test_log,
        help="stored results, of every version",
        description="Stored test results, oldest first, of every version (earlier ones too).",
        epilog="examples:\n  modelgit test log\n  modelgit test log chat --test acc\n"
        "  modelgit test log chat@1 --json",
    )
    r.add_argument("ref", nargs="?", metavar="REF", help="a model (all versions) or name@N")
    r.add_argument("--test", metavar="NAME", help="only this test")

    p = command(
        sub,
        "creator",
        cmd_creator,
        help="show or set how a model is derived from its parents (for cascade)",
        description=(
            "Show the creation function of model NAME, or set it to FN (pkg.module:function, "
            "called as fn(parents, **args) with parents = {parent name: state_dict}; it "
            "returns NAME's new state_dict). `modelgit cascade` uses it."
        ),
        epilog=(
            "examples:\n"
            '  modelgit creator chat mytrain:finetune --args \'{"lr": 1e-4, "steps": 100}\'\n'
            "  modelgit creator chat\n"
            "  modelgit creator chat --rm"
        ),
    )
    p.add_argument("name", metavar="NAME", help="the derived model")
    p.add_argument("fn", nargs="?", metavar="FN", help="import path: pkg.module:function")
    p.add_argument("--args", metavar="JSON", help="keyword arguments, a JSON object")
    p.add_argument("--rm", action="store_true", help="forget the creation function")

    p = command(
        sub,
        "cascade",
        cmd_cascade,
        help="re-derive every model downstream of an updated one",
        description=(
            "After NAME got a new version, re-derive every downstream model that has a "
            "creation function (`modelgit creator`), in topological order: each gets a new "
            "version whose provenance points at its parents' new versions. A failure stops "
            "that model's subtree only; everything done stays, and running the command "
            "again resumes. Exit status 1 when some model failed or was blocked."
        ),
        epilog=(
            "examples:\n"
            "  modelgit cascade base --dry-run\n"
            "  modelgit cascade base --run-tests\n"
            "  modelgit cascade base --json"
        ),
    )
    p.add_argument("name", metavar="NAME", help="the updated model")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument(
        "--run-tests", action="store_true", help="test each model; a failure stops its subtree"
    )

    p = command(
        sub,
        "bisect",
        cmd_bisect,
        help="find the first version on a lineage path that fails a test",
        description=(
            "Binary search along the lineage path (provenance and version links) from GOOD "
            "to BAD for the first version at which TEST fails. TEST is a registered test "
            "(its results are stored) or an import path pkg.module:function. BAD must "
            "descend from GOOD; both ends are tested first unless --no-verify."
        ),
        epilog=(
            "examples:\n"
            "  modelgit bisect acc base@1 chat@5\n"
            "  modelgit bisect mytests:loss chat@1 chat@9 --lower-is-better --threshold 0.5"
        ),
    )
    p.add_argument("test", metavar="TEST", help="a registered test, or pkg.module:function")
    p.add_argument("good", metavar="GOOD", help="a version that passes")
    p.add_argument("bad", metavar="BAD", help="a version that fails")
    p.add_argument("--threshold", type=float, metavar="X", help="pass mark (import paths only)")
    p.add_argument(
        "--lower-is-better", action="store_true", help="smaller is better (import paths only)"
    )
    p.add_argument(
        "--factory",
        metavar="FN",
        help="pkg.module:function building the nn.Module the test gets (import paths only)",
    )
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="test both ends first: GOOD must pass and BAD fail (default; --no-verify trusts them)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        nargs="+",
        metavar="REF",
        default=argparse.SUPPRESS,
        help="versions to test: name (latest), name@N, a tag, descendants:X, relation:R",
    )
    p.add_argument(
        "--tests",
        nargs="+",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="tests to run (default: all)",
    )


def cmd_test_run(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, importable_cwd():
        if not repo.tests():
            raise CliError("no tests are registered; add one with `modelgit test register`")
        named = getattr(args, "tests", None)
        result = repo.run_tests(models=getattr(args, "models", None), tests=named)
        specs = [t for t in repo.tests() if named is None or t.name in named]
    if len(result):
        emit(args.json, result.to_json(), str(result))
        return 0 if result.ok else 1
    from ..workflows.tests_registry import describe_selector

    what = "; ".join(f"{t.name} selects {describe_selector(t.selector)}" for t in specs)
    emit(args.json, result.to_json(), f"no test applies ({what})")
    return 1 if named else 0  # tests asked for by name that run on nothing: a mistake


def cmd_test_register(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        spec = repo.register_test(
            args.name,
            args.fn,
            models=args.models,
            higher_is_better=args.higher_is_better,
            threshold=args.threshold,
            factory=args.factory,
            replace=args.replace,
        )
    emit(args.json, spec, f"registered test {spec.name}: {spec.fn} on {spec.models} ({spec.goal})")
    return 0


def cmd_test_ls(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        specs = repo.tests()
    rows: list[list[object]] = [["TEST", "FUNCTION", "MODELS", "GOAL", "FACTORY"]]
    rows += [[s.name, s.fn, s.models, s.goal, s.factory or "-"] for s in specs]
    emit(args.json, [s.to_json() for s in specs], table(rows) if specs else "no tests registered")
    return 0


def cmd_test_rm(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        repo.remove_test(args.name, keep_results=args.keep_results)
    kept = " (its results kept)" if args.keep_results else ""
    print(f"removed test {args.name}{kept}")
    return 0


def cmd_test_log(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        results = repo.test_results(test=args.test, model=args.ref)
    emit(args.json, results.to_json(), str(results))
    return 0


def cmd_creator(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        if args.rm:
            if args.fn or args.args:
                raise UsageError("--rm takes no FN or --args")
            repo.set_creator(args.name, None)
            print(f"{args.name} has no creation function now")
            return 0
        if args.fn is None:
            if args.args:
                raise UsageError("--args needs FN")
            c = repo.creator(args.name)
            text = "no creation function" if c is None else f"{c.fn} {json.dumps(c.args)}"
            emit(args.json, c.to_json() if c else None, f"{args.name}: {text}")
            return 0
        try:
            kwargs = json.loads(args.args) if args.args else {}
        except json.JSONDecodeError as exc:
            raise CliError(f"--args is not JSON: {exc}") from None
        c = repo.set_creator(args.name, args.fn, kwargs)
    assert c is not None
    emit(args.json, c, f"{args.name} is derived by {c.fn} {json.dumps(c.args)}")
    return 0


def cmd_cascade(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, importable_cwd():
        report = repo.cascade(args.name, dry_run=args.dry_run, run_tests=args.run_tests)
    emit(args.json, report)
    return 0 if report.ok else 1


def cmd_bisect(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, importable_cwd():
        result = repo.bisect(
            args.test,
            args.good,
            args.bad,
            threshold=args.threshold,
            higher_is_better=not args.lower_is_better,
            verify=args.verify,
            factory=args.factory,
        )
    emit(args.json, result)
    return 0
