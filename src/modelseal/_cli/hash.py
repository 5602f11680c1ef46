"""``modelseal hash``: the manifest of a release directory, and checking one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from modelseal._cli._output import TerminalProgress, echo, human_size, write_atomic
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError, ManifestError, ManifestMismatch
from modelseal.release import DigestCache, Manifest, check_release, hash_release
from modelseal.release.hashing import ALGORITHMS
from modelseal.release.ignore import escape


def _inside_release(root: str, path: str) -> str | None:
    """``path`` relative to the release ``root`` when it lies inside it (to exclude it)."""
    root_real = os.path.realpath(root)
    target = os.path.realpath(path)
    if target.startswith(root_real.rstrip(os.sep) + os.sep):
        return os.path.relpath(target, root_real).replace(os.sep, "/")
    return None


def _load_manifest(path: str) -> Manifest:
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


@click.command("hash")
@click.argument("directory", type=click.Path(path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write the manifest (JSON) to this file.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the manifest (or, with --check, the comparison) as JSON.",
)
@click.option(
    "--algorithm",
    type=click.Choice(sorted(ALGORITHMS)),
    default=None,
    help="Digest algorithm for each file (default sha256; blake3 uses every core "
    "even on one large file).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker threads (default: the number of usable cores).",
)
@click.option(
    "--ignore",
    "ignores",
    multiple=True,
    metavar="PATTERN",
    help="Also ignore paths matching this glob (repeatable; '/a' anchors at the "
    "root, 'd/' matches directories only).",
)
@click.option(
    "--no-default-ignores",
    is_flag=True,
    help="Do not apply the default ignore list (.git/, editor and OS litter).",
)
@click.option(
    "--check",
    "check_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Re-hash and compare with this manifest; exit 1 on any difference.",
)
@click.option(
    "--cache",
    "use_cache",
    is_flag=True,
    help="Reuse digests of unchanged files (size, mtime, ctime, inode) from $MODELSEAL_HOME/cache.",
)
@click.option(
    "--trust-cache",
    is_flag=True,
    help="With --check: accept cached digests instead of reading every byte.",
)
def hash_command(
    directory: str,
    output: str | None,
    as_json: bool,
    algorithm: str | None,
    jobs: int | None,
    ignores: tuple[str, ...],
    no_default_ignores: bool,
    check_path: str | None,
    use_cache: bool,
    trust_cache: bool,
) -> int:
    """Compute the manifest of the release in DIRECTORY (per-file digests and a root digest).

    With --check, re-hash DIRECTORY and name every file that was modified, added, removed or
    renamed since MANIFEST was made.
    """
    if trust_cache and not use_cache:
        raise click.UsageError("--trust-cache needs --cache")
    cache = DigestCache.default() if use_cache else None
    if cache is not None and cache.recovered:
        click.echo(f"warning: {cache.recovered}", err=True)
    try:
        if check_path is not None:
            return _check(
                directory,
                check_path,
                as_json,
                algorithm,
                jobs,
                ignores,
                no_default_ignores,
                output,
                cache,
                trust_cache,
            )
        return _hash(
            directory,
            output,
            as_json,
            algorithm or "sha256",
            jobs,
            ignores,
            no_default_ignores,
            cache,
        )
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
        raise click.UsageError("--output cannot be combined with --check")
    if no_default_ignores:
        raise click.UsageError(
            "--no-default-ignores cannot be combined with --check "
            "(the manifest records the ignore list it was made with)"
        )
    expected = _load_manifest(check_path)
    if algorithm is not None and algorithm != expected.algorithm:
        raise click.UsageError(
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
        report = result.to_dict()
        report.update(expected_root=expected.root, actual_root=actual.root)
        echo(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK if result.ok else EXIT_FAILED
    if not result.ok:
        raise ManifestMismatch(result.lines(), subject=directory)
    echo(f"OK: {len(actual.files)} files match {check_path}")
    echo(f"root {actual.root}")
    return EXIT_OK
