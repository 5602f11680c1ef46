"""Start a local llama.cpp server (``llama-cpp-python[server]``) on a verified GGUF file.

``modelseal gateway --launch llama-cpp`` verifies the release first and then hands the very GGUF
file it verified to :func:`launch_llama_cpp`, so the bytes that were checked are the bytes that
are loaded. The server runs as a child process (``python -m llama_cpp.server``) with its output
in a log file; :func:`launch_llama_cpp` returns once ``GET /v1/models`` answers, and raises
:class:`~modelseal.errors.GatewayError` with the server's last log lines when it exits or does not
become ready in time.

What ``llama_cpp.server`` serves: ``GET /v1/models`` lists one model whose ``id`` is the alias
given here (without an alias it would be the model path); it never exposes the path or a digest
otherwise, and it answers a request for any ``model`` name with its default model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from modelseal.errors import GatewayError

__all__ = ["LaunchedServer", "launch_llama_cpp", "llama_cpp_available"]

# Every setting of llama_cpp.server is also read from an environment variable of the same name
# (pydantic-settings, case-insensitive), and HOST / PORT / CONFIG_FILE even override the command
# line. The child gets an environment without them, so only the arguments given here count.
_SERVER_SETTINGS = frozenset(
    {
        "model", "model_alias", "n_gpu_layers", "split_mode", "main_gpu", "tensor_split",
        "vocab_only", "use_mmap", "use_mlock", "kv_overrides", "rpc_servers", "seed", "n_ctx",
        "n_batch", "n_ubatch", "n_threads", "n_threads_batch", "rope_scaling_type",
        "rope_freq_base", "rope_freq_scale", "yarn_ext_factor", "yarn_attn_factor",
        "yarn_beta_fast", "yarn_beta_slow", "yarn_orig_ctx", "mul_mat_q", "logits_all",
        "embedding", "offload_kqv", "flash_attn", "last_n_tokens_size", "lora_base", "lora_path",
        "numa", "chat_format", "chat_template_kwargs", "clip_model_path", "cache", "cache_type",
        "cache_size", "hf_tokenizer_config_path", "hf_pretrained_model_name_or_path",
        "hf_model_repo_id", "draft_model", "draft_model_num_pred_tokens", "type_k", "type_v",
        "verbose", "host", "port", "ssl_keyfile", "ssl_certfile", "api_key", "interrupt_requests",
        "disable_ping_events", "root_path", "models", "config_file",
    }
)  # fmt: skip

# the modules llama_cpp.server imports beyond llama_cpp itself (the `[server]` extra)
_SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

_INSTALL_HINT = (
    "install it with `make e2e-deps`, or build it yourself: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llama-cpp-python[server]"'
)
_LOG_TAIL_LINES = 30
_LOG_TAIL_BYTES = 64 * 1024


@dataclass
class LaunchedServer:
    """A running ``llama_cpp.server`` child process.

    ``url`` is the server's root (``http://127.0.0.1:PORT``); OpenAI clients want
    :attr:`base_url` (``.../v1``). ``alias`` is the model id ``GET /v1/models`` reports.
    """

    url: str
    model_path: Path
    alias: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI API base URL of the server (``url`` + ``/v1``)."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log (empty when there is none)."""
        return _tail(self.log_path, lines)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout_s``. Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LaunchedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def llama_cpp_available() -> str | None:
    """``None`` when ``llama-cpp-python[server]`` is importable here, else what is missing.

    Nothing is imported (``importlib.util.find_spec`` only): loading llama.cpp's native library
    is left to the child process.
    """
    missing = [
        name for name in ("llama_cpp", *_SERVER_MODULES) if importlib.util.find_spec(name) is None
    ]
    return ", ".join(missing) if missing else None


def launch_llama_cpp(
    model: Path,
    *,
    alias: str,
    host: str = "127.0.0.1",
    port: int = 0,
    threads: int = 1,
    ctx: int = 2048,
    ready_timeout_s: float = 120,
    log: Path | None = None,
    chat_format: str | None = None,
) -> LaunchedServer:
    """Start ``python -m llama_cpp.server`` on ``model`` and wait until it answers.

    ``port=0`` picks a free port. ``threads`` is used for generation and for prompt batches
    (llama.cpp's default for the latter is every core). The server's stdout and stderr go to
    ``log`` (a new temporary file when ``None``; see :attr:`LaunchedServer.log_path`).
    ``chat_format`` names one of llama-cpp-python's chat formats (``"gemma"``, ``"chatml"``, ...);
    without it the server uses the GGUF's own chat template, and falls back to ``llama-2`` when
    the file has none (Gemma 3 270M base has none: pass ``"gemma"``).

    Raises :class:`~modelseal.errors.GatewayError` when the model file is missing, when
    ``llama-cpp-python[server]`` is not installed for this interpreter, when the server exits
    before it is ready, or when it is not ready after ``ready_timeout_s`` (it is stopped then);
    the message carries the last lines of the server's log.
    """
    model = Path(model)
    if not model.is_file():
        raise GatewayError(
            f"cannot launch llama.cpp: the model file {model} does not exist or is not a file"
        )
    if threads < 1:
        raise GatewayError(f"cannot launch llama.cpp: threads must be at least 1, not {threads}")
    missing = llama_cpp_available()
    if missing is not None:
        raise GatewayError(
            "cannot launch llama.cpp: llama-cpp-python[server] is not installed for "
            f"{sys.executable} (missing: {missing})",
            hint=_INSTALL_HINT,
        )
    # a port already taken would let another server answer the readiness check
    port = _bind_port(host, port)
    connect_host = _connect_host(host)
    url = f"http://{connect_host}:{port}"

    if log is None:
        fd, name = tempfile.mkstemp(prefix="modelseal-llama-cpp-", suffix=".log")
        os.close(fd)
        log = Path(name)
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model.resolve()),
        "--model_alias", alias,
        "--host", host,
        "--port", str(port),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_ctx", str(ctx),
    ]  # fmt: skip
    if chat_format is not None:
        command += ["--chat_format", chat_format]
    env = {k: v for k, v in os.environ.items() if k.casefold() not in _SERVER_SETTINGS}
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log_file = log.open("wb")
    except OSError as exc:
        raise GatewayError(f"cannot launch llama.cpp: cannot write its log {log}: {exc}") from exc
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env
        )
    except OSError as exc:
        log_file.close()
        raise GatewayError(f"cannot launch llama.cpp: {exc}") from exc
    server = LaunchedServer(
        url=url,
        model_path=model,
        alias=alias,
        process=process,
        log_path=log,
        _log_file=log_file,
    )
    try:
        _wait_ready(server, ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: LaunchedServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise GatewayError(
                    f"llama.cpp server exited with status {code} before it was ready "
                    f"(model {server.model_path}); last lines of {server.log_path}:\n"
                    + _indent(server.log_tail())
                )
            try:
                response = client.get(server.base_url + "/models")
            except httpx.HTTPError:
                pass
            else:
                # ours: it answers with our alias, and our process is still the one running
                if (
                    response.status_code == 200
                    and server.alias in _model_ids(response)
                    and server.process.poll() is None
                ):
                    return
            if time.monotonic() >= deadline:
                raise GatewayError(
                    f"llama.cpp server at {server.url} was not ready after {timeout_s:g} s "
                    f"(model {server.model_path}); last lines of {server.log_path}:\n"
                    + _indent(server.log_tail())
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


def _bind_port(host: str, port: int) -> int:
    """``port`` when it is free on ``host`` (a free one for 0); binds the way uvicorn does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise GatewayError(
                f"cannot launch llama.cpp: cannot listen on {host} port {port}: {exc.strerror}"
            ) from exc
        bound: int = sock.getsockname()[1]
        return bound


def _model_ids(response: httpx.Response) -> list[str]:
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        return []
    if not isinstance(data, list):
        return []
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def _connect_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # bound to all: reach it on loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _tail(path: Path | None, lines: int) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError), path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _LOG_TAIL_BYTES))
        data = f.read()
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
    return ""


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines()) if text else "  (empty log)"
