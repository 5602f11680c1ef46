"""The exception tree of modelseal.

Every error the library raises on purpose derives from :class:`Error`; the CLI prints its
:meth:`~Error.diagnostics` text (no traceback unless ``--debug``) and exits with
:attr:`~Error.exit_code`::

    Error                       exit 3  (internal: a bug or an environment problem)
    ├── StoreError                      (tlog: the log database failed)
    ├── LogClientError                  (tlog: the log server could not be reached)
    ├── GatewayError                    (gateway: cannot serve, e.g. llama.cpp failed to start)
    ├── UpstreamError                   (gateway: the upstream model server failed or timed out)
    ├── InputError              exit 2  (the caller asked for something impossible)
    │   ├── UnsafePathError             (symlink escaping the release, device file, FIFO, "..")
    │   ├── ManifestError               (a manifest file that cannot be parsed or is inconsistent)
    │   ├── ReleaseError                (a release directory that cannot be read)
    │   ├── AlreadyInitialised          (ca.home: `modelseal init` never overwrites keys)
    │   ├── CertifyRefused              (seal: a dangerous or malformed file in the release)
    │   ├── SequencerBusyError          (tlog: another sequencer holds the log)
    │   ├── NotFoundError               (tlog: no such entry, size or proof)
    │   ├── LogRejectedError            (tlog: the log server refused a submission)
    │   ├── UnauthorizedError           (tlog server: a submission not signed by a submitter)
    │   ├── ConfigError                 (gateway: a configuration file that cannot be used)
    │   └── PolicyViolation             (gateway: a request parameter the key's policy refuses)
    └── VerificationError       exit 1  (the bytes are not what they claim to be)
        ├── ManifestMismatch            (files modified, added, removed or renamed)
        ├── SignatureError              (attest: a signature does not verify)
        ├── EnvelopeError               (attest: a malformed DSSE envelope)
        ├── StatementError              (attest: not an in-toto Statement v1)
        ├── OmsBundleError              (attest: a malformed OpenSSF model-signing bundle)
        ├── ChainError                  (ca: no valid chain to a trusted root)
        ├── RevocationListError         (ca: a revocation list that is invalid or expired)
        ├── RevokedError                (ca: the seal serial is revoked)
        ├── ProofError                  (tlog: a Merkle proof does not verify)
        ├── NoteError                   (tlog: a note, checkpoint or cosignature that fails)
        ├── ForkError                   (tlog: two checkpoints that cannot both be true)
        ├── LogResponseError            (tlog: a log server answer that does not parse)
        ├── ModelRefused                (gateway: the model failed a fail-closed check)
        ├── ReceiptError                (gateway: a receipt whose signature or digests fail)
        └── AuditChainError             (gateway: an audit log whose hash chain is broken)

A tampered model is never a ``ValueError``: it is a :class:`VerificationError`, with its own exit
code, so scripts can tell "bad argument" from "bad bytes".
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class Error(Exception):
    """Root of all modelseal errors."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """A human-readable explanation, suitable for printing without a traceback."""
        text = self.message
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class InputError(Error):
    """The input (arguments, files, directories) cannot be used as given."""

    exit_code = EXIT_USAGE


class UnsafePathError(InputError):
    """A path in a release is unsafe to follow or to record.

    ``problems`` lists every offending path with its reason, so one run reports them all.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {path}: {reason}" for path, reason in self.problems[:50])
        more = len(self.problems) - 50
        if more > 0:
            shown += f"\n  … and {more} more"
        super().__init__(
            f"refusing to hash: {len(self.problems)} unsafe path(s) in the release\n{shown}",
            hint="modelseal never follows links out of the release directory nor reads "
            "devices or FIFOs; copy the files in (e.g. `cp -rL`) or remove them",
        )


class ManifestError(InputError):
    """A manifest document is malformed or internally inconsistent."""


class ReleaseError(InputError):
    """A release directory (or a file in it) cannot be read."""


class VerificationError(Error):
    """The checked bytes do not match what was claimed."""

    exit_code = EXIT_FAILED


class ManifestMismatch(VerificationError):
    """A release directory differs from its manifest; ``differences`` names each file."""

    def __init__(self, differences: list[str], *, subject: str = "release") -> None:
        self.differences = list(differences)
        listed = "\n".join(f"  {line}" for line in self.differences)
        super().__init__(
            f"{subject} does not match its manifest: "
            f"{len(self.differences)} difference(s)\n{listed}"
        )


class GatewayError(Error):
    """The gateway cannot serve (its model failed a check, or it cannot start)."""


class UpstreamError(Error):
    """The upstream model server failed, refused or timed out.

    ``status`` is the HTTP status the gateway answers with (502 or 504).
    """

    def __init__(self, message: str, *, status: int = 502, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ConfigError(InputError):
    """A gateway configuration that cannot be used (names the key at fault)."""


class PolicyViolation(InputError):
    """A request parameter that the API key's policy refuses; ``param`` names it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelRefused(VerificationError):
    """The gateway refuses to serve: the model failed a fail-closed identity check."""


class ReceiptError(VerificationError):
    """A gateway receipt whose signature, format or digests do not verify."""


class AuditChainError(VerificationError):
    """A gateway audit log whose hash chain is broken or whose rows were altered."""
