"""``modelseal hash``: the manifest of a release directory, and checking one."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from modelseal._cli._output import TerminalProgress, echo, human_size, write_atomic
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError, ManifestError, ManifestMismatch

if TYPE_CHECKING:
    from modelseal.release import DigestCache, Manifest


def _inside_release(root: str, path: str) -> str | None:
    """``path`` relative to the release ``root`` when it lies inside it (to exclude it)."""
    root_real = os.path.realpath(root)
    target = os.path.realpath(path)
    if target.startswith(root_real.rstrip(os.sep) + os.sep):
        return os.path.relpath(target, root_real).replace(os.sep, "/")
    return None


def _load_manifest(path: str) -> Manifest:
    from pathlib import Path

    from modelseal.release import Manifest

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"manifest not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read manifest {path}: {exc.strerror}") from exc
    try:
        return Manifest.from_json(data)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc.message}", hint=exc.hint) from exc


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not in the range x>=1")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "hash",
        help="compute or check the manifest of a release directory",
        description="Compute the manifest of the release in DIRECTORY (per-file digests and a "
        "root digest). With --check, re-hash DIRECTORY and name every file that was modified, "
        "added, removed or renamed since MANIFEST was made.",
    )
    parser.add_argument("directory", metavar="DIRECTORY")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the manifest (JSON) here")
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="print the manifest (or, with --check, the comparison) as JSON",
    )
    parser.add_argument(
        "--algorithm",
        choices=("blake3", "sha256"),
        default=None,
        help="digest per file (default sha256; blake3 uses every core even on one large file)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=None,
        help="worker threads (default: the number of usable cores)",
    )
    parser.add_argument(
        "--ignore",
        dest="ignores",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also ignore paths matching this glob "
        "(repeatable; '/a' anchors at the root, 'd/' matches directories only)",
    )
    parser.add_argument(
        "--no-default-ignores",
        action="store_true",
        help="do not apply the default ignore list (.git/, editor, OS litter)",
    )
    parser.add_argument(
        "--check",
        dest="check_path",
        metavar="MANIFEST",
        help="re-hash and compare with MANIFEST; exit 1 on any difference",
    )
    parser.add_argument(
        "--cache",
        dest="use_cache",
        action="store_true",
        help="reuse digests of unchanged files (size, mtime, ctime, inode) "
        "from $MODELSEAL_HOME/cache",
    )
    parser.add_argument(
        "--trust-cache",
        action="store_true",
        help="with --check: accept cached digests instead of reading every byte",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.trust_cache and not args.use_cache:
        raise InputError("--trust-cache needs --cache")
    for path, what in ((args.output, "--output"), (args.check_path, "--check")):
        if path is not None and os.path.isdir(path):
            raise InputError(f"{what} {path} is a directory")
    from modelseal.release import DigestCache

    cache = DigestCache.default() if args.use_cache else None
    if cache is not None and cache.recovered:
        sys.stderr.write(f"warning: {cache.recovered}\n")
    ignores = tuple(args.ignores)
    try:
        if args.check_path is not None:
            return _check(args.directory, args.check_path, args.as_json, args.algorithm,
                          args.jobs, ignores, args.no_default_ignores, args.output, cache,
                          args.trust_cache)  # fmt: skip
        return _hash(args.directory, args.output, args.as_json, args.algorithm or "sha256",
                     args.jobs, ignores, args.no_default_ignores, cache)  # fmt: skip
    finally:
        if cache is not None:
            cache.close()


def _hash(
    directory: str,
    output: str | None,
    as_json: bool,
    algorithm: str,
    jobs: int | None,
    ignores: tuple[str, ...],
    no_default_ignores: bool,
    cache: DigestCache | None,
) -> int:
    from modelseal.release import hash_release
    from modelseal.release.ignore import escape

    extra = list(ignores)
    if output is not None and (inside := _inside_release(directory, output)):
        extra.append(escape(inside))
    with TerminalProgress("hashing") as progress:
        manifest = hash_release(
            directory,
            algorithm=algorithm,
            jobs=jobs,
            ignore=extra,
            default_ignores=not no_default_ignores,
            cache=cache,
            progress=progress,
        )
    if output is not None:
        write_atomic(output, manifest.to_json())
    if as_json:
        echo(manifest.to_json().rstrip("\n"))
        return EXIT_OK
    total = manifest.total_size
    rate = total / progress.elapsed if progress.elapsed > 0 else 0.0
    echo(
        f"hashed {len(manifest.files)} files, {human_size(total)} with {algorithm} "
        f"in {progress.elapsed:.2f} s ({human_size(rate)}/s)"
    )
    echo(f"root {manifest.root}")
    if output is not None:
        echo(f"manifest written to {output}")
    return EXIT_OK


def _check(
    directory: str,
    check_path: str,
    as_json: bool,
    algorithm: str | None,
    jobs: int | None,
    ignores: tuple[str, ...],
    no_default_ignores: bool,
    output: str | None,
    cache: DigestCache | None,
    trust_cache: bool,
) -> int:
    if output is not None:
        raise InputError("--output cannot be combined with --check")
    if no_default_ignores:
        raise InputError(
            "--no-default-ignores cannot be combined with --check "
            "(the manifest records the ignore list it was made with)"
        )
    from modelseal.release import check_release
    from modelseal.release.ignore import escape

    expected = _load_manifest(check_path)
    if algorithm is not None and algorithm != expected.algorithm:
        raise InputError(
            f"--algorithm {algorithm} differs from the manifest's {expected.algorithm}"
        )
    extra = list(ignores)
    if inside := _inside_release(directory, check_path):
        extra.append(escape(inside))
    with TerminalProgress("checking") as progress:
        result, actual = check_release(
            directory,
            expected,
            jobs=jobs,
            ignore=extra,
            cache=cache,
            trust_cache=trust_cache,
            progress=progress,
        )
    if as_json:
        import json

        report = result.to_dict()
        report.update(expected_root=expected.root, actual_root=actual.root)
        echo(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK if result.ok else EXIT_FAILED
    if not result.ok:
        raise ManifestMismatch(result.lines(), subject=directory)
    echo(f"OK: {len(actual.files)} files match {check_path}")
    echo(f"root {actual.root}")
    return EXIT_OK
