"""``modelseal receipt verify``: check a gateway receipt offline against the gateway's key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from modelseal._cli._output import echo
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "receipt",
        help="check receipts signed by the gateway",
        description="Work with the signed receipts the gateway attaches to every answer.",
    )
    actions = parser.add_subparsers(dest="receipt_command", metavar="ACTION")
    actions.required = True
    verify = actions.add_parser(
        "verify",
        help="verify a receipt offline",
        description="Verify a receipt (a compact JWS) against the gateway's public key (PEM, as "
        "served at /v1/receipts/key) and print its claims. With --request and "
        "--response-text, also check that the receipt covers exactly those bytes. Exit 0 "
        "valid, 1 invalid (with the reason), 2 usage error.",
    )
    verify.add_argument(
        "receipt", metavar="RECEIPT", help="file holding the receipt, or - for stdin"
    )
    verify.add_argument("--key", required=True, metavar="PEM", help="the gateway's public key")
    verify.add_argument(
        "--request", metavar="FILE", help="the raw request body the receipt should cover"
    )
    verify.add_argument(
        "--response-text",
        metavar="FILE",
        help="the full response text (all choices' text in order; exact bytes, UTF-8)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable result")
    verify.set_defaults(run=run)


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _token(data: bytes, source: str) -> str:
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InputError(f"{source} does not hold a receipt (not ASCII text)") from None


def _guards(guards: Any) -> str:
    """One line for the guard summaries: ``name/stage verdict (categories)`` each.

    Accepts the gateway's summaries (``verdict``, ``categories``) and full verdicts
    (``blocked``, ``findings``).
    """
    if not isinstance(guards, list) or not guards:
        return "-"
    parts = []
    for item in guards:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        name = f"{item.get('guard', '?')}"
        if item.get("stage"):
            name += f"/{item['stage']}"
        verdict = item.get("verdict")
        if not isinstance(verdict, str):
            verdict = "block" if item.get("blocked") else "pass"
        found: set[str] = set()
        categories = item.get("categories")
        if isinstance(categories, list):
            found.update(str(c) for c in categories)
        findings = item.get("findings")
        if isinstance(findings, list):
            found.update(
                str(f["category"]) for f in findings if isinstance(f, dict) and f.get("category")
            )
        parts.append(f"{name} {verdict}" + (f" ({', '.join(sorted(found))})" if found else ""))
    return ", ".join(parts)


def _show(claims: dict[str, Any], checks: dict[str, bool]) -> None:
    model = claims.get("model")
    if not isinstance(model, dict):
        model = {}
    rows = [
        ("id", claims.get("id")),
        ("time", claims.get("iat")),
        ("model", model.get("id")),
        ("root", model.get("root")),
        ("serial", model.get("serial")),
        ("key", claims.get("key") or "-"),
        ("status", claims.get("status")),
        ("stream", "yes" if claims.get("stream") else "no"),
        ("guards", _guards(claims.get("guards"))),
        ("request", claims.get("request")),
        ("response", claims.get("response")),
        ("signer", claims.get("kid")),
    ]
    for name, value in rows:
        mark = ""
        if name in checks:
            mark = "  (matches)" if checks[name] else "  (DOES NOT MATCH)"
        echo(f"  {name:<9}{value if value is not None else '-'}{mark}")


def run(args: argparse.Namespace) -> int:
    import json

    from modelseal.errors import ReceiptError
    from modelseal.gateway.receipts import digest, load_receipt_public_key, verify_receipt

    source = "stdin" if args.receipt == "-" else args.receipt
    token = _token(_read(args.receipt), source)
    key = load_receipt_public_key(_read(args.key), args.key)
    expected: dict[str, bytes] = {}
    if args.request:
        expected["request"] = _read(args.request)
    if args.response_text:
        expected["response"] = _read(args.response_text)

    try:
        claims = verify_receipt(token, key)
    except ReceiptError as exc:
        if args.json:
            echo(json.dumps({"valid": False, "reason": exc.message}, indent=2))
        sys.stderr.write(f"invalid: {exc.message}\n")
        return EXIT_FAILED

    checks = {name: digest(data) == claims[name] for name, data in expected.items()}
    failed = [name for name, ok in checks.items() if not ok]
    reason = None
    if failed:
        names = {"request": "--request", "response": "--response-text"}
        reason = "; ".join(
            f"{names[name]} digest {digest(expected[name])} differs from the receipt's "
            f"{claims[name]}"
            for name in failed
        )
    if args.json:
        result = {"valid": not failed, "reason": reason, "claims": claims, "checks": checks}
        echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        echo(f"{'valid' if not failed else 'INVALID'} receipt, signed by {claims['kid']}")
        _show(claims, checks)
    if failed:
        sys.stderr.write(f"invalid: {reason}\n")
        return EXIT_FAILED
    return EXIT_OK
