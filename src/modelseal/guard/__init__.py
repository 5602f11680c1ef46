"""Guardrails: one guard per module behind one interface, streaming-aware verdicts.

    from modelseal.guard import DEFAULT_GUARDS, build_pipeline

    pipeline = build_pipeline(DEFAULT_GUARDS)
    result = pipeline.check(prompt, "input")          # result.blocked, result.block
    scanner = pipeline.stream("output")               # one per streamed choice
    step = scanner.feed(delta)                        # step.release, step.blocked
    step = scanner.finish()

Guards match on normalised text (invisible characters removed, NFKC), report offsets into the
text as given, and never put the matched text into a finding. A stream is checked in
overlapping windows (see :mod:`~modelseal.guard.pipeline`), so a match split across deltas is
caught and, in buffer mode, none of it is released.

Modules: :mod:`~modelseal.guard.base` (Finding, Verdict, the Guard protocol),
:mod:`~modelseal.guard.pipeline` (GuardPipeline, StreamScanner), :mod:`~modelseal.guard.config`
(build_pipeline, register_guard), :mod:`~modelseal.guard.text` (normalisation), and one module
per guard: size, patterns, secrets, pii.
"""

from modelseal.guard.base import Finding, Guard, LengthGuard, Stage, Verdict
from modelseal.guard.config import (
    DEFAULT_GUARDS,
    GuardOptions,
    build_pipeline,
    guard_types,
    register_guard,
)
from modelseal.guard.patterns import PatternGuard
from modelseal.guard.pii import PiiGuard
from modelseal.guard.pipeline import GuardPipeline, PipelineResult, StreamScanner, StreamStep
from modelseal.guard.secrets import SecretsGuard
from modelseal.guard.size import SizeGuard

__all__ = [
    "DEFAULT_GUARDS",
    "Finding",
    "Guard",
    "GuardOptions",
    "GuardPipeline",
    "LengthGuard",
    "PatternGuard",
    "PiiGuard",
    "PipelineResult",
    "SecretsGuard",
    "SizeGuard",
    "Stage",
    "StreamScanner",
    "StreamStep",
    "Verdict",
    "build_pipeline",
    "guard_types",
    "register_guard",
]
