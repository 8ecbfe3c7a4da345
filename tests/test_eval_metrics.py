"""Evaluation metrics on synthetic embeddings: perfect embeddings score 1.0, random ones score near chance."""

from __future__ import annotations

import numpy as np
import pytest
from bench_probe_selection import counting_loss_evaluations
from sklearn.metrics import balanced_accuracy_score

from barcodemae.eval.metrics import (
    PROBE_C_GRID,
    bin_reconstruction_ami,
    classification_scores,
    harmonic_mean,
    holdout_keeping_every_class,
    knn_accuracy,
    linear_probe,
    majority_vote,
    nearest_neighbors,
    one_nn_accuracy,
    per_class_accuracy,
    reduce_dimensions,
    select_probe_c,
    top_k_neighbors,
)

NUM_CLASSES = 12


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


@pytest.fixture
def labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, NUM_CLASSES, 600), rng.integers(0, NUM_CLASSES, 300)


def test_perfect_embedding_scores_one_everywhere(labels):
    train, test = labels
    nn = one_nn_accuracy(one_hot(train), train, one_hot(test), test)
    assert nn["accuracy"] == nn["macro_accuracy"] == 1.0
    probe = linear_probe(one_hot(train), train, one_hot(test), test)
    assert probe["accuracy"] == probe["macro_accuracy"] == 1.0
    assert probe["num_classes"] == NUM_CLASSES
    ami = bin_reconstruction_ami(one_hot(test), test, reducer="none")
    assert ami["ami"] == pytest.approx(1.0)
    assert ami["n_clusters"] == ami["num_labels"] == NUM_CLASSES


def test_random_embedding_scores_near_chance(labels):
    train, test = labels
    rng = np.random.default_rng(1)
    chance = 1 / NUM_CLASSES
    nn = one_nn_accuracy(rng.normal(size=(600, 32)), train, rng.normal(size=(300, 32)), test)
    assert abs(nn["accuracy"] - chance) < 0.07 and abs(nn["macro_accuracy"] - chance) < 0.07
    probe = linear_probe(rng.normal(size=(600, 32)), train, rng.normal(size=(300, 32)), test)
    assert abs(probe["accuracy"] - chance) < 0.08
    ami = bin_reconstruction_ami(rng.normal(size=(300, 32)), test, reducer="pca", n_components=8)
    assert abs(ami["ami"]) < 0.06
    assert ami["reducer"] == "pca"


def test_linear_probe_is_not_over_regularised_with_many_classes():
    """500 Gaussian classes in 8 dimensions (species in a narrow embedding): the probe must come within a few
    points of the nearest-true-centre rule; a fixed, too strong L2 penalty (the old default) scored 0.79."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(500, 8))
    train_y, test_y = np.repeat(np.arange(500), 20), np.repeat(np.arange(500), 5)
    train_x = centres[train_y] + 0.35 * rng.normal(size=(len(train_y), 8))
    test_x = centres[test_y] + 0.35 * rng.normal(size=(len(test_y), 8))
    distances = ((test_x[:, None, :] - centres[None]) ** 2).sum(axis=-1)
    nearest_centre = (distances.argmin(axis=1) == test_y).mean()  # 0.92
    assert linear_probe(train_x, train_y, test_x, test_y)["accuracy"] > nearest_centre - 0.04
    with pytest.raises(ValueError, match="must be > 0"):
        linear_probe(train_x, train_y, test_x, test_y, c=0.0)


def test_holdout_keeps_one_member_of_every_class_for_fitting():
    labels = np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 2 + ["d"])
    held_out = holdout_keeping_every_class(labels, 0.25, seed=0)
    assert held_out.sum() == round(0.25 * (9 + 4 + 1))  # of the rows that are not a class's last member
    assert all((~held_out[labels == name]).any() for name in "abcd") and not held_out[labels == "d"].any()
    assert np.array_equal(held_out, holdout_keeping_every_class(labels, 0.25, seed=0))
    draws = np.mean([holdout_keeping_every_class(labels, 0.25, seed=s) for s in range(400)], axis=0)
    assert draws[labels == "a"].mean() == pytest.approx(draws[labels == "b"].mean(), abs=0.05)  # no class favoured
    with pytest.raises(ValueError, match=r"must be in \(0, 1\)"):
        holdout_keeping_every_class(labels, 1.0)


def test_probe_c_is_chosen_on_held_out_train():
    """300 narrow classes (species in a 64-wide embedding) want a weak penalty; the choice is the held-out best."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(300, 8))
    labels = np.repeat(np.arange(300), 10)
    x = centres[labels] + 0.35 * rng.normal(size=(len(labels), 8))
    crowded = select_probe_c(x, labels)
    scores = crowded["held_out_accuracy"]
    assert set(scores) == {"0.1", "1.0", "10.0", "100.0", "1000.0"}
    assert crowded["c"] in (10.0, 100.0) and scores[str(crowded["c"])] == max(scores.values())
    assert scores["0.1"] < scores["1.0"] < scores[str(crowded["c"])]  # over-regularised at small C
    assert (crowded["num_fit"], crowded["num_held_out"], crowded["at_grid_edge"]) == (2460, 540, False)

    with pytest.warns(UserWarning, match=r"best C \(1\) is at the edge of the grid"):
        assert select_probe_c(x, labels, grid=(0.1, 1.0))["at_grid_edge"]

    tied = np.repeat(np.arange(4), 15)  # pure noise: every C scores the same, the strongest penalty is kept
    noise = select_probe_c(rng.normal(size=(60, 400)), tied, grid=(1.0, 10.0, 100.0))
    assert len(set(noise["held_out_accuracy"].values())) == 1 and noise["c"] == 1.0 and not noise["at_grid_edge"]
    with pytest.raises(ValueError, match="every species has a single training barcode"):
        select_probe_c(rng.normal(size=(6, 4)), [0, 1, 2, 3, 4, 5])


def test_probe_c_selection_warm_starts_to_the_same_choice_with_fewer_loss_evaluations():
    """Each C starts from the previous (stronger-penalty) solution: the same held-out scores as fitting every C
    from scratch (the problem is convex), for far fewer evaluations of the loss."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(60), 8)
    x = rng.normal(size=(60, 16))[labels] + 0.4 * rng.normal(size=(len(labels), 16))
    held_out = holdout_keeping_every_class(labels, 0.2, seed=0)
    warm, warm_evaluations, _ = counting_loss_evaluations(lambda: select_probe_c(x, labels))
    cold, cold_evaluations, _ = counting_loss_evaluations(lambda: {
        str(c): linear_probe(x[~held_out], labels[~held_out], x[held_out], labels[held_out], c=c)["accuracy"]
        for c in PROBE_C_GRID
    })
    assert warm["held_out_accuracy"] == pytest.approx(cold, abs=2 / held_out.sum())  # at most a barcode or two
    assert cold[str(warm["c"])] == pytest.approx(max(cold.values()), abs=2 / held_out.sum())  # a best C either way
    assert warm_evaluations < 0.9 * cold_evaluations, (warm_evaluations, cold_evaluations)


def test_one_nn_is_cosine_and_string_labels_work():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 10.5]])  # large norm must not win: cosine, not dot product
    queries = np.array([[5.0, 0.1], [0.1, 3.0], [1.0, 1.0]])
    result = one_nn_accuracy(
        keys, ["Aedes", "Culex", "Bombus"], queries, ["Aedes", "Culex", "Bombus"], return_predictions=True
    )
    assert list(result["predictions"]) == ["Aedes", "Culex", "Bombus"]
    assert result["accuracy"] == 1.0 and result["num_keys"] == 3 and result["num_queries"] == 3


def test_nearest_neighbors_chunked_equals_bruteforce():
    rng = np.random.default_rng(2)
    keys, queries = rng.normal(size=(257, 16)), rng.normal(size=(301, 16))
    nearest, similarity = nearest_neighbors(keys, queries, chunk_size=7)
    normalise = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)
    cosine = normalise(queries) @ normalise(keys).T
    np.testing.assert_array_equal(nearest, cosine.argmax(axis=1))
    np.testing.assert_allclose(similarity, cosine.max(axis=1), rtol=1e-5, atol=1e-5)


def test_faiss_search_equals_the_torch_search():
    """The faiss branch (exact inner product on normalised vectors) must return the torch branch's neighbours."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(4)
    keys, queries = rng.normal(size=(500, 24)) * rng.uniform(0.1, 10, size=(500, 1)), rng.normal(size=(300, 24))
    torch_nearest, torch_similarity = nearest_neighbors(keys, queries, use_faiss=False)
    faiss_nearest, faiss_similarity = nearest_neighbors(keys, queries, use_faiss=True)
    np.testing.assert_array_equal(faiss_nearest, torch_nearest)
    np.testing.assert_allclose(faiss_similarity, torch_similarity, rtol=1e-5, atol=1e-5)
    torch_top, _ = top_k_neighbors(keys, queries, 5, use_faiss=False)
    np.testing.assert_array_equal(top_k_neighbors(keys, queries, 5, use_faiss=True)[0], torch_top)


def tied_keys_and_queries(seed: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys (300, 8) that are one-hot vectors (many exact duplicates) and queries (200, 8) with 0.5 in 4 places:
    every cosine is exactly 0.5 or 0 (no rounding anywhere), so most neighbours tie; and that exact cosine."""
    rng = np.random.default_rng(seed)
    keys = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 300)]
    queries = np.zeros((200, 8), dtype=np.float32)
    np.put_along_axis(queries, np.argsort(rng.random((200, 8)), axis=1)[:, :4], 0.5, axis=1)
    return keys, queries, queries @ keys.T


def test_top_k_orders_ties_by_key_index_whatever_k():
    """Equal similarities go lower key index first (torch.max's rule, so the 1-NN is the one the search always
    returned), and the first columns of a larger k are the smaller k's: torch.topk alone orders ties arbitrarily."""
    keys, queries, cosine = tied_keys_and_queries()
    rows = np.arange(len(queries))[:, None]
    expected = np.lexsort((np.broadcast_to(np.arange(len(keys)), cosine.shape), -cosine), axis=1)[:, :7]
    nearest, similarity = top_k_neighbors(keys, queries, 7, chunk_size=64)
    np.testing.assert_array_equal(nearest, expected)
    np.testing.assert_array_equal(similarity, cosine[rows, expected])
    assert (similarity[:, 0] == similarity[:, 6]).mean() > 0.5  # the ties this test is about
    for k in (1, 3):
        np.testing.assert_array_equal(top_k_neighbors(keys, queries, k)[0], expected[:, :k])
    np.testing.assert_array_equal(nearest_neighbors(keys, queries)[0], cosine.argmax(axis=1))  # the first maximum
    with pytest.raises(ValueError, match=r"k must be in 1..300"):
        top_k_neighbors(keys, queries, 301)


def test_majority_vote_breaks_ties_toward_the_nearest_neighbour():
    neighbours = np.array([
        [0, 1, 1, 2, 2],  # k=3: 1 wins 2-1; k=5: 1 and 2 tie 2-2, 1 is nearer
        [3, 1, 2, 1, 2],  # k=3: a three-way tie, the nearest (3) wins; k=5: 1 and 2 tie, 1 is nearer
        [4, 5, 6, 6, 6],  # k=5: 6 wins 3-1-1 though it is third
    ])
    assert majority_vote(neighbours, 1).tolist() == [0, 3, 4]
    assert majority_vote(neighbours, 3).tolist() == [1, 3, 4]
    assert majority_vote(neighbours, 5).tolist() == [1, 1, 6]


def test_knn_k1_is_one_nn_exactly_even_with_ties():
    """Duplicate keys carry different labels, so which tied key is nearest decides the 1-NN prediction."""
    keys, queries, _ = tied_keys_and_queries()
    rng = np.random.default_rng(7)
    key_labels = np.array([f"genus{i}" for i in rng.integers(0, 5, len(keys))], dtype=object)
    query_labels = np.array([f"genus{i}" for i in rng.integers(0, 5, len(queries))], dtype=object)
    one_nn = one_nn_accuracy(keys, key_labels, queries, query_labels)
    knn = knn_accuracy(keys, key_labels, queries, query_labels, ks=(7, 1, 3))
    assert list(knn) == ["7", "1", "3"]
    assert knn["1"] == {"accuracy": one_nn["accuracy"], "macro_accuracy": one_nn["macro_accuracy"]}


def test_knn_outvotes_mislabelled_nearest_keys():
    """Compact genera with a fifth of the keys mislabelled: 1-NN copies the noise, the 7-NN majority does not."""
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(6, 16)) * 5
    key_labels, query_labels = rng.integers(0, 6, 600), rng.integers(0, 6, 300)
    keys = centres[key_labels] + rng.normal(size=(600, 16))
    queries = centres[query_labels] + rng.normal(size=(300, 16))
    noisy = np.where(rng.random(600) < 0.2, rng.integers(0, 6, 600), key_labels)
    knn = knn_accuracy(keys, noisy, queries, query_labels, ks=(1, 7))
    assert knn["1"]["accuracy"] < 0.9 and knn["7"]["accuracy"] > 0.97
    with pytest.raises(ValueError, match="ks must be positive integers"):
        knn_accuracy(keys, noisy, queries, query_labels, ks=(0, 3))
    with pytest.raises(ValueError, match="ks must be positive integers"):
        knn_accuracy(keys, noisy, queries, query_labels, ks=())


def test_umap_reducer_keeps_clusters_apart():
    """With umap-learn installed, ``auto`` is UMAP (BIOSCAN-5M's reducer) and clusters survive the reduction."""
    pytest.importorskip("umap")
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 40)
    x = (rng.normal(size=(4, 64)) * 4)[labels] + rng.normal(size=(160, 64))
    reduced, used = reduce_dimensions(x, n_components=5, reducer="auto")
    assert used == "umap" and reduced.shape == (160, 5) and reduced.dtype == np.float32
    assert bin_reconstruction_ami(x, labels, reducer="umap", n_components=5)["ami"] > 0.95


def test_macro_accuracy_is_balanced_accuracy():
    y_true = np.array(["a"] * 8 + ["b"] * 2)
    y_pred = np.array(["a"] * 8 + ["a", "c"])  # the majority class right, the rare one wrong (one unseen label)
    scores = classification_scores(y_true, y_pred)
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["macro_accuracy"] == pytest.approx(0.5) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    per_class = per_class_accuracy(y_true, y_pred)
    assert per_class == {"a": {"accuracy": 1.0, "support": 8}, "b": {"accuracy": 0.0, "support": 2}}


def test_harmonic_mean():
    assert harmonic_mean([0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / (1 + 2 + 4))
    assert harmonic_mean([0.9, 0.0, 0.8]) == 0.0
    with pytest.raises(ValueError, match="finite"):
        harmonic_mean([0.5, float("nan")])


def test_reducer_choice_is_reported():
    x = np.random.default_rng(3).normal(size=(50, 20)).astype(np.float32)
    reduced, used = reduce_dimensions(x, n_components=5, reducer="pca")
    assert reduced.shape == (50, 5) and used == "pca"
    same, used = reduce_dimensions(x, n_components=50, reducer="pca")  # already narrow enough: untouched
    assert used == "none" and same.shape == (50, 20)
    with pytest.raises(ValueError, match="reducer"):
        reduce_dimensions(x, reducer="tsne")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="query_labels: expected 2 labels"):
        one_nn_accuracy(np.ones((3, 4)), [0, 1, 2], np.ones((2, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match="keys have dimension 4 but queries 5"):
        nearest_neighbors(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        one_nn_accuracy(np.full((3, 4), np.nan), [0, 1, 2], np.ones((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(np.ones((3, 4)), [0, 0, 0], np.ones((2, 4)), [0, 0])
