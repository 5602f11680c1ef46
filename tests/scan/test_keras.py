"""Keras configs (.keras config.json, .h5 model_config): Lambda, foreign modules, gadgets."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.scan.interface import ScanContext
from modelseal.scan.keras import (
    H5_SIGNATURE,
    KerasConfigScanner,
    KerasH5Scanner,
    check_keras_config,
    find_configs,
)
from modelseal.scan.model import Finding, Verdict, verdict_of

CTX = ScanContext("m.h5", "m.h5", 0, None, None, lambda s, n, name, ctx: [])


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def layer(class_name: str, module: str = "keras.layers", **config: Any) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def model(*layers: dict[str, Any], kind: str = "Sequential") -> dict[str, Any]:
    return layer(kind, "keras", name="m", layers=list(layers))


def lambda_layer() -> dict[str, Any]:
    fn = {"class_name": "__lambda__", "config": {"code": "4wEAAAAA", "defaults": None}}
    return layer("Lambda", name="lam", function=fn, arguments={})


def check(tree: Any) -> list[Finding]:
    return check_keras_config(json.dumps(tree).encode(), "config.json")


def h5_scan(data: bytes) -> list[Finding]:
    return KerasH5Scanner().scan(io.BytesIO(data), len(data), CTX)


# -- hand-written config.json ------------------------------------------------------------------


def test_benign_config_is_clean() -> None:
    tree = model(layer("InputLayer", batch_shape=[None, 4]), layer("Dense", units=3))
    tree["config"]["layers"][1]["config"]["kernel_initializer"] = layer(
        "GlorotUniform", "keras.initializers", seed=None
    )
    tree["config"]["layers"][1]["config"]["dtype"] = layer("DTypePolicy", "keras", name="f32")
    assert check(tree) == []


def test_lambda_nested_in_nested_models() -> None:
    inner = model(layer("Dense", units=2), model(lambda_layer(), kind="Functional"))
    findings = check(model(layer("Dense", units=3), inner, kind="Functional"))
    assert rules(findings) == {"keras.lambda-layer", "keras.lambda-function"}
    assert verdict_of(findings) is Verdict.DANGEROUS
    lam = next(f for f in findings if f.rule == "keras.lambda-layer")
    assert "$.config.layers[1].config.layers[1].config.layers[0]" in lam.message
    assert lam.location.member == "config.json"


def test_keras2_lambda_function_type() -> None:
    tree = {"class_name": "Lambda", "config": {"function": ["YmFk", None, None]}}
    tree["config"]["function_type"] = "lambda"
    assert rules(check(tree)) == {"keras.lambda-layer", "keras.lambda-function"}
    # a lambda function used anywhere, not only in a Lambda layer
    act = {"class_name": "__lambda__", "config": {"code": "x"}}
    assert rules(check(model(layer("Dense", activation=act)))) == {"keras.lambda-function"}


@pytest.mark.parametrize(
    ("obj", "rule", "verdict"),
    [
        ({"module": "os", "class_name": "function", "config": "system"}, "keras.foreign-module",
         Verdict.DANGEROUS),
        ({"module": "builtins", "class_name": "function", "config": "exec"},
         "keras.foreign-module", Verdict.DANGEROUS),
        ({"module": "subprocess", "class_name": "Popen", "config": {}}, "keras.foreign-module",
         Verdict.DANGEROUS),
        ({"module": "os.path", "class_name": "function", "config": "join"},
         "keras.foreign-module", Verdict.DANGEROUS),
        ({"class_name": "X", "config": {}, "registered_name": "subprocess.Popen"},
         "keras.foreign-module", Verdict.DANGEROUS),
        ({"class_name": "posix.system", "config": {}}, "keras.foreign-module",
         Verdict.DANGEROUS),
        ({"module": "my_layers", "class_name": "Fancy", "config": {}, "registered_name":
          "MyPkg>Fancy"}, "keras.unknown-module", Verdict.SUSPICIOUS),
        ({"module": "keras.layers", "class_name": "Fancy", "config": {}, "registered_name":
          "Custom>Fancy"}, "keras.unknown-module", Verdict.SUSPICIOUS),
        ({"module": "keras.config", "class_name": "function", "config":
          "enable_unsafe_deserialization"}, "keras.gadget", Verdict.DANGEROUS),
        ({"module": "keras.utils", "class_name": "function", "config": "get_file"},
         "keras.gadget", Verdict.DANGEROUS),
        ({"module": "keras.src.saving.saving_api", "class_name": "function", "config":
          "load_model"}, "keras.gadget", Verdict.DANGEROUS),
        ({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/x"}},
         "keras.gadget", Verdict.DANGEROUS),
        ({"class_name": "TFOpLambda", "config": {"function": "io.write_file"}},
         "keras.tf-op-lambda", Verdict.SUSPICIOUS),
    ],
)  # fmt: skip
def test_modules_and_gadgets(obj: dict[str, Any], rule: str, verdict: Verdict) -> None:
    # buried as an activation of a layer of a nested model: the whole tree is walked
    tree = model(layer("Dense", units=1), model(layer("Dense", activation=obj)))
    findings = check(tree)
    assert [(f.rule, f.verdict) for f in findings] == [(rule, verdict)]
    assert findings[0].symbol


def test_enable_unsafe_then_lambda() -> None:
    # CVE-2025-9906: a config that turns off safe mode and then loads a Lambda
    unsafe = {"module": "keras.config", "class_name": "function", "registered_name": "function"}
    unsafe["config"] = "enable_unsafe_deserialization"
    tree = model(layer("Activation", activation=unsafe), lambda_layer())
    assert rules(check(tree)) == {"keras.gadget", "keras.lambda-layer", "keras.lambda-function"}


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b""],
)
def test_bad_config_is_malformed(data: bytes) -> None:
    findings = check_keras_config(data, "config.json")
    assert rules(findings) == {"keras.bad-config"}
    assert findings[0].verdict is Verdict.MALFORMED


def test_config_scanner_reads_the_stream() -> None:
    data = json.dumps(model(lambda_layer())).encode()
    findings = KerasConfigScanner().scan(io.BytesIO(data), len(data), CTX)
    assert "keras.lambda-layer" in rules(findings)
    assert findings[0].location.member is None


def test_findings_are_capped() -> None:
    tree = model(*[lambda_layer() for _ in range(2000)])
    assert len(check(tree)) == 1000


# -- HDF5 --------------------------------------------------------------------------------------


def test_not_hdf5_is_malformed() -> None:
    assert rules(h5_scan(b"not an hdf5 file")) == {"keras.bad-hdf5"}
    assert rules(h5_scan(b"")) == {"keras.bad-hdf5"}


def test_fake_hdf5_with_embedded_config() -> None:
    cfg = json.dumps(model(lambda_layer())).encode()
    data = H5_SIGNATURE + b"\0" * 100 + cfg + b"\0" * 50
    findings = h5_scan(data)
    assert rules(findings) == {"keras.lambda-layer", "keras.lambda-function"}
    assert {f.location.offset for f in findings} == {108}


def test_find_configs_skips_broken_candidates_and_nested_objects() -> None:
    good = json.dumps(model(layer("Dense", units=1))).encode()
    buf = b'xx{"class_name": broken' + good + b'{"module": "os"}'
    found, complete = find_configs(buf, 1 << 20)
    assert complete
    assert [offset for offset, _ in found] == [buf.index(good), buf.index(b'{"module": "os"}')]


def test_huge_numbers_do_not_escape() -> None:
    digits = b"9" * 5000
    assert rules(check_keras_config(b'{"a": ' + digits + b"}", None)) == {"keras.bad-config"}
    data = H5_SIGNATURE + b'{"class_name": ' + digits + b'}{"module": "os"}'
    assert rules(h5_scan(data)) == {"keras.foreign-module"}


def test_find_configs_work_is_bounded() -> None:
    # every candidate parses a long way and then fails: quadratic without a budget
    unit = b'{"class_name": "a", "x": ' + b"[0," * 2000
    buf = unit * 50
    found, complete = find_configs(buf, 100_000)
    assert found == []
    assert not complete
    findings = h5_scan(H5_SIGNATURE + buf * 20)
    assert rules(findings) == {"keras.h5-scan-limit"}


def test_real_hdf5_with_model_config_attribute(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = json.dumps(
            model(layer("Dense", units=2), model(lambda_layer(), kind="Functional"))
        )
        f.create_dataset("model_weights/dense/kernel", data=[[1.0, 2.0]])
    findings = h5_scan(path.read_bytes())
    assert rules(findings) == {"keras.lambda-layer", "keras.lambda-function"}


def test_real_hdf5_without_config_is_clean(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=list(range(1000)))
        f.attrs["note"] = "class_name module"
    assert h5_scan(path.read_bytes()) == []


# -- real Keras models (built in a subprocess with the torch backend) --------------------------

BUILD = textwrap.dedent(
    """
    import sys
    import keras

    out = sys.argv[1]
    inp = keras.Input((4,))
    x = keras.layers.Dense(4, activation="relu")(inp)
    x = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])(x)
    keras.Model(inp, x).save(out + "/benign.keras")
    keras.Model(inp, x).save(out + "/benign.h5")
    inner = keras.Sequential(
        [keras.layers.Dense(3), keras.Sequential([keras.layers.Lambda(lambda t: t * 2)])]
    )
    inp = keras.Input((4,))
    evil = keras.Model(inp, inner(keras.layers.Dense(4)(inp)))
    evil.save(out + "/lambda.keras")
    evil.save(out + "/lambda.h5")
    """
)


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras with the torch backend is not installed")
    out = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def keras_zip_findings(path: Path) -> list[Finding]:
    with zipfile.ZipFile(path) as archive:
        findings = check_keras_config(archive.read("config.json"), "config.json")
        weights = archive.read("model.weights.h5")
    findings.extend(f.within("model.weights.h5") for f in h5_scan(weights))
    return findings


@pytest.mark.slow
def test_real_benign_models_are_clean(real_models: Path) -> None:
    assert keras_zip_findings(real_models / "benign.keras") == []
    assert h5_scan((real_models / "benign.h5").read_bytes()) == []


@pytest.mark.slow
def test_real_lambda_models_are_dangerous(real_models: Path) -> None:
    findings = keras_zip_findings(real_models / "lambda.keras")
    assert rules(findings) == {"keras.lambda-layer", "keras.lambda-function"}
    lam = next(f for f in findings if f.rule == "keras.lambda-layer")
    assert lam.message.count(".config.layers[") == 3  # model > Sequential > Sequential
    h5 = h5_scan((real_models / "lambda.h5").read_bytes())
    assert "keras.lambda-layer" in rules(h5)
    assert verdict_of(h5) is Verdict.DANGEROUS


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["class_name", "module", "config", "registered_name", "name", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=50,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_trees_never_raise(tree: Any) -> None:
    findings = check(tree)
    assert all(f.verdict is not Verdict.SAFE for f in findings)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1024))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_keras_config(data, None)
    h5_scan(data)
    h5_scan(H5_SIGNATURE + data)
    h5_scan(H5_SIGNATURE + b'{"class_name"' + data)
