"""Size limits: refuse prompts and answers longer than a number of characters."""

from __future__ import annotations

from modelseal.errors import InputError
from modelseal.guard.base import Finding, Stage


class SizeGuard:
    """Blocks inputs over ``max_input_chars`` and outputs over ``max_output_chars`` characters.

    Lengths are counted in characters of the text as given (``len(text)``); ``None`` means no
    limit on that stage. On a stream the scanner feeds it the running total.
    """

    version = "1.0"
    max_span = 0

    def __init__(
        self,
        *,
        max_input_chars: int | None = None,
        max_output_chars: int | None = None,
        name: str = "size",
    ) -> None:
        for option, value in (
            ("max_input_chars", max_input_chars),
            ("max_output_chars", max_output_chars),
        ):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise InputError(f"{option!r} must be a whole number >= 0, not {value!r}")
        self.name = name
        self.limits: dict[str, int] = {}
        if max_input_chars is not None:
            self.limits["input"] = max_input_chars
        if max_output_chars is not None:
            self.limits["output"] = max_output_chars
        self.stages: frozenset[str] = frozenset(self.limits)

    def check(self, text: str, stage: Stage) -> list[Finding]:
        return self.check_length(len(text), stage)

    def check_length(self, length: int, stage: Stage) -> list[Finding]:
        limit = self.limits.get(stage)
        if limit is None or length <= limit:
            return []
        return [
            Finding(
                guard=self.name,
                category=f"size.{stage}",
                action="block",
                detail=f"{stage} is longer than {limit} characters",
            )
        ]
