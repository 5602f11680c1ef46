"""Jinja2 template checks (chat templates in GGUF, safetensors metadata, tokenizer configs).

A template is parsed into Jinja2's AST, never compiled or rendered, and the AST is walked for
sandbox-escape markers (``__class__``, ``__globals__``, ``cycler.__init__``, ``os``…): the
CVE-2024-34359 class of attacks on loaders that render chat templates unsandboxed. jinja2 is
imported only when a template is actually checked.
"""

from __future__ import annotations

UNPARSABLE = "<unparsable>"  # the marker check_chat_template reports for a template Jinja rejects
MAX_TEMPLATES = 16  # chat templates checked per file
MAX_TEMPLATE = 256 << 10  # real chat templates are a few KiB; Jinja2 lexes ~1 MiB/s


def check_chat_template(text: str) -> list[tuple[str, str]]:
    """Sandbox-escape markers in a Jinja2 template, as (marker, explanation); [] when clean.

    The template is parsed, never compiled or rendered. A template Jinja2 cannot parse gives
    the single marker :data:`UNPARSABLE`, and so does one longer than :data:`MAX_TEMPLATE`.
    """
    from modelseal.scan._jinja_ast import find_markers

    return find_markers(text)
