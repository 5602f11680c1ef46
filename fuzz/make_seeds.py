"""Regenerate the small seed inputs of the fuzz harnesses in fuzz/seeds/ (all written by us).

python fuzz/make_seeds.py        # needs numpy, safetensors, gguf and onnx (the dev extra)
"""

from __future__ import annotations

import collections
import io
import pickle
import tempfile
import zipfile
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"


def write(family: str, name: str, data: bytes) -> None:
    folder = SEEDS / family
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def pickles() -> None:
    value = {"a": [1, 2.0, "x", b"y"], "o": collections.OrderedDict(k=(1, None, True))}
    for protocol in range(6):
        write("pickle", f"proto{protocol}.pkl", pickle.dumps(value, protocol=protocol))
    write("pickle", "global.pkl", b"cos\nsystem\n(S'true'\ntR.")


def zips() -> None:
    for name, method, members in (
        ("torch-like.zip", zipfile.ZIP_DEFLATED,
         {"archive/data.pkl": b"\x80\x04K\x01.", "archive/version": b"3\n"}),
        ("stored.zip", zipfile.ZIP_STORED, {"a.npy": b"\x93NUMPY\x01\x00v\x00" + b" " * 10}),
    ):  # fmt: skip
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        write("zip", name, buf.getvalue())


def tensors() -> None:
    import gguf
    import numpy as np
    from onnx import TensorProto, helper
    from safetensors.numpy import save

    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.int8)}
    write("safetensors", "small.safetensors", save(weights, metadata={"format": "np"}))
    for name, array in (
        ("int", np.arange(5)),
        ("struct", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])),
        ("fortran", np.asfortranarray(np.ones((2, 2)))),
    ):
        buf = io.BytesIO()
        np.save(buf, array)
        write("npy", f"{name}.npy", buf.getvalue())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}"
                          "{% endfor %}")  # fmt: skip
        writer.add_uint32("llama.context_length", 128)
        writer.add_tensor("t", np.ones((4, 8), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        write("gguf", "small.gguf", path.read_bytes())
    init = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2])], [init],
    )  # fmt: skip
    write("protobuf", "model.onnx", helper.make_model(graph).SerializeToString())


if __name__ == "__main__":
    pickles()
    zips()
    tensors()
