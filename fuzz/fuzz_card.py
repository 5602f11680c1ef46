"""Coverage-guided fuzzing of the model card parser and the documentation engine (atheris).

    python fuzz/fuzz_card.py fuzz/seeds/card -atheris_runs=100000

Invariant: any bytes parse into a card whose metadata is JSON, whose sections come in strictly
increasing line order, lie inside the text and carry their own title last in their path; a
documentation pack (picked by the input) then evaluates it, as the model card and as a data card,
into a report whose status counts add up and whose present items say where they were found.
Any exception is a bug.
"""

from __future__ import annotations

import json

from modelseal.audit.card import parse_card
from modelseal.audit.docs import DocContext, evaluate_pack, packs
from modelseal.audit.model import DocStatus

_FILES = {"config": ["config.json"]}
_FACTS = {"param_count": 1000}
_PACKS = packs()  # loaded (and its regexes compiled) before atheris instruments the code


def test_one_input(data: bytes) -> None:
    card = parse_card(data)
    json.dumps(card.metadata)
    lines = [s.line for s in card.sections]
    if lines != sorted(set(lines)):
        raise AssertionError(f"section lines out of order: {lines}")
    for section in card.sections:
        if section.text not in card.text or section.full_text not in card.text:
            raise AssertionError(f"section {section.title!r} is not a part of the card text")
        if section.path[-1] != section.title or not 1 <= section.level <= 6:
            raise AssertionError(f"bad section {section!r}")
    # one pack per input (picked by the input) keeps the fuzzer fast; all of them get their turn
    pack = _PACKS[sum(data[:64]) % len(_PACKS)]
    extra = (parse_card(data, "DATA_CARD.md"),) if len(data) % 2 else ()
    for report in (evaluate_pack(DocContext(card, extra, _FILES, _FACTS), pack),):
        if sum(report.count(s) for s in DocStatus) != len(report.items):
            raise AssertionError(f"{report.pack}: counts do not add up")
        for item in report.items:
            if item.status == DocStatus.PRESENT and not item.found_in:
                raise AssertionError(f"{item.rule} present but found nowhere")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
