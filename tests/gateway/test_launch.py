"""launch_llama_cpp: a clear GatewayError for every way a launch can fail, and a clean stop.

Most tests run a stand-in ``llama_cpp.server`` (a tiny package put first on the path, for this
process and the child) so they run without llama-cpp-python; one runs the real server on a file
that is not GGUF when llama-cpp-python is installed (``make e2e-deps``).
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
from importlib.machinery import ModuleSpec
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.errors import GatewayError
from modelseal.gateway import launch
from modelseal.gateway.launch import launch_llama_cpp, llama_cpp_available

FAKE_SERVER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    args = sys.argv[1:]
    opts = dict(zip(args[::2], args[1::2]))
    mode = os.environ.get("FAKE_LLAMA_MODE", "serve")
    print("fake llama_cpp.server pid", os.getpid(), flush=True)
    if mode == "exit":
        print("error loading model: not a GGUF file", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seen = {k: os.environ.get(k) for k in ("HOST", "PORT", "API_KEY", "n_ctx", "KEEP_ME")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({
                "object": "list",
                "data": [{"id": opts["--model_alias"], "object": "model"}],
                "argv": args,
                "env": seen,
            }).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    HTTPServer((opts["--host"], int(opts["--port"])), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_llama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in llama_cpp.server on sys.path and PYTHONPATH; returns a model file for it."""
    stubs = tmp_path / "stubs"
    server = stubs / "llama_cpp" / "server"
    server.mkdir(parents=True)
    (stubs / "llama_cpp" / "__init__.py").write_text("")
    (server / "__init__.py").write_text("")
    (server / "__main__.py").write_text(FAKE_SERVER)
    for name in launch._SERVER_MODULES:
        if importlib.util.find_spec(name) is None:
            (stubs / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(stubs))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(stubs), os.environ.get("PYTHONPATH", "")])
    )
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF fake")
    return model


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(GatewayError, match=r"model file .*absent\.gguf does not exist"):
        launch_llama_cpp(missing, alias="m")


def test_model_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="is not a file"):
        launch_llama_cpp(tmp_path, alias="m")


def test_log_that_cannot_be_written(fake_llama: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(GatewayError, match="cannot write its log"):
        launch_llama_cpp(fake_llama, alias="m", log=blocker / "server.log")


def test_llama_cpp_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "llama_cpp" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    # (the [server] extra's modules may be missing too on a machine without `make e2e-deps`)
    assert (llama_cpp_available() or "").split(", ")[0] == "llama_cpp"
    with pytest.raises(GatewayError, match=r"llama-cpp-python\[server\] is not installed") as err:
        launch_llama_cpp(model, alias="m")
    assert err.value.hint is not None
    assert "make e2e-deps" in err.value.hint
    assert "GGML_NATIVE=OFF" in err.value.hint


def test_server_that_exits_at_once(
    fake_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "exit")
    log = tmp_path / "logs" / "server.log"
    with pytest.raises(GatewayError, match="exited with status 3 before it was ready") as err:
        launch_llama_cpp(fake_llama, alias="m", log=log, ready_timeout_s=60)
    # the message carries the server's own words and where its log is
    assert "error loading model: not a GGUF file" in err.value.message
    assert str(log) in err.value.message
    assert "error loading model" in log.read_text()


def test_server_that_never_gets_ready_is_stopped(
    fake_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "hang")
    log = tmp_path / "server.log"
    with pytest.raises(GatewayError, match=r"not ready after 0\.5 s") as err:
        launch_llama_cpp(fake_llama, alias="m", log=log, ready_timeout_s=0.5)
    assert "fake llama_cpp.server pid" in err.value.message
    pid = int(log.read_text().split("pid")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_launch_serve_and_stop(
    fake_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama_cpp.server reads every setting from the environment too (HOST and PORT even win
    # over the command line): none of them may reach the child
    for name, value in {"HOST": "0.0.0.0", "PORT": "1", "API_KEY": "k", "n_ctx": "5"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEEP_ME", "yes")
    server = launch_llama_cpp(fake_llama, alias="gemma", threads=1, ctx=512, ready_timeout_s=60)
    try:
        assert server.running
        assert server.url.startswith("http://127.0.0.1:")
        assert server.base_url == server.url + "/v1"
        assert server.alias == "gemma"
        assert server.model_path == fake_llama
        assert server.log_path is not None
        assert server.log_path.is_file()
        body = httpx.get(server.base_url + "/models", trust_env=False, timeout=10).json()
        assert body["data"][0]["id"] == "gemma"
        argv = body["argv"]
        opts = dict(zip(argv[::2], argv[1::2], strict=True))
        assert opts["--model"] == str(fake_llama.resolve())
        assert opts["--model_alias"] == "gemma"
        assert opts["--n_threads"] == opts["--n_threads_batch"] == "1"
        assert opts["--n_ctx"] == "512"
        assert opts["--port"] == server.url.rsplit(":", 1)[1]
        assert "--chat_format" not in opts
        assert body["env"] == {
            "HOST": None,
            "PORT": None,
            "API_KEY": None,
            "n_ctx": None,
            "KEEP_ME": "yes",
        }
    finally:
        server.stop()
    assert not server.running
    assert server.process.returncode is not None
    server.stop()  # a second stop is harmless
    with pytest.raises(httpx.TransportError):
        httpx.get(server.base_url + "/models", trust_env=False, timeout=2)


def test_chat_format_is_passed(fake_llama: Path) -> None:
    with launch_llama_cpp(fake_llama, alias="g", chat_format="gemma") as server:
        argv = httpx.get(server.base_url + "/models", trust_env=False, timeout=10).json()["argv"]
    assert argv[argv.index("--chat_format") + 1] == "gemma"
    assert not server.running


def test_stop_kills_a_server_that_ignores_sigterm(
    fake_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "ignore-term")
    server = launch_llama_cpp(fake_llama, alias="m", ready_timeout_s=60)
    server.stop(timeout_s=0.5)
    assert server.process.returncode == -9


def test_port_in_use_is_a_clean_error(
    fake_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with launch_llama_cpp(fake_llama, alias="a") as first:
        port = int(first.url.rsplit(":", 1)[1])
        # the port is checked first: the server already there must not pass for the new one
        with pytest.raises(GatewayError, match=f"cannot listen on 127.0.0.1 port {port}"):
            launch_llama_cpp(fake_llama, alias="b", port=port, log=tmp_path / "b.log")
        assert first.running


def test_readiness_wants_its_own_alias(
    fake_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server that answers /v1/models with another model is not ready: it is not ours
    monkeypatch.setattr(launch, "_model_ids", lambda response: ["someone-else"])
    with pytest.raises(GatewayError, match=r"not ready after 1 s"):
        launch_llama_cpp(fake_llama, alias="mine", log=tmp_path / "s.log", ready_timeout_s=1)


@pytest.mark.skipif(llama_cpp_available() is not None, reason="llama-cpp-python not installed")
def test_real_llama_cpp_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"this is not a GGUF file\n" * 100)
    with pytest.raises(GatewayError, match="exited with status") as err:
        launch_llama_cpp(model, alias="m", log=tmp_path / "server.log", ready_timeout_s=120)
    assert "model.gguf" in err.value.message
    assert "failed to load model" in err.value.message.lower()


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zl", "Zp", "Cc"]))))
def test_log_tail_is_the_last_lines(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        assert launch._tail(path, 5) == "\n".join(lines[-5:])


def test_log_tail_of_a_missing_log(tmp_path: Path) -> None:
    assert launch._tail(tmp_path / "absent", 5) == ""
    assert launch._tail(None, 5) == ""
