"""The BIOSCAN-5M / BarcodeMAE metrics on plain arrays (testable with synthetic embeddings).

- :func:`one_nn_accuracy`: cosine 1-NN classification of queries against labelled keys (open-world genus);
  exact search in torch, chunked so memory stays bounded, or faiss (exact inner product) when installed and
  the search is large (:func:`top_k_neighbors`). :func:`knn_accuracy`: the k-NN majority vote at several k
  from the same search.
- :func:`linear_probe`: a logistic-regression probe on frozen embeddings (closed-world species), L-BFGS in torch;
  :func:`select_probe_c` picks its inverse L2 strength on a held-out part of the training barcodes.
- :func:`bin_reconstruction_ami`: dimensionality reduction (UMAP, PCA fallback) + agglomerative clustering,
  scored by adjusted mutual information against the BINs (or species).
- :func:`harmonic_mean`: the single headline number of the three.

Accuracy is scikit-learn's ``accuracy_score``; macro accuracy is ``balanced_accuracy_score`` (the mean of the
per-class recalls), so a model cannot look good by only getting the common genera right.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, adjusted_mutual_info_score, balanced_accuracy_score

from barcodemae.devices import resolve_device

from .protocol_options import KNN_K, PROBE_C_GRID

FAISS_MIN_PAIRS = 10**10
"""Above this many query x key pairs, faiss (when installed) does the search instead of torch."""


def _labels(values: Any, name: str, length: int) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or len(labels) != length:
        raise ValueError(f"{name}: expected {length} labels (one per row), got shape {labels.shape}")
    return labels


def _matrix(values: Any, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise ValueError(f"{name}: expected a non-empty (N, D) array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return matrix


def classification_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``accuracy`` and ``macro_accuracy`` (balanced accuracy: mean per-class recall over the true classes)."""
    with warnings.catch_warnings():  # predictions of classes absent from y_true are fine (open world)
        warnings.simplefilter("ignore", UserWarning)
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        }


def per_class_accuracy(y_true: Any, y_pred: Any) -> dict[str, dict[str, float]]:
    """Accuracy (recall) and support of every true class, e.g. for the accuracy-per-genus plot."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, inverse, support = np.unique(y_true, return_inverse=True, return_counts=True)
    correct = np.bincount(inverse, weights=(y_true == y_pred).astype(np.float64), minlength=len(classes))
    return {str(c): {"accuracy": float(k / n), "support": int(n)} for c, k, n in zip(classes, correct, support)}


def _top_k(similarity: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar keys of every query row of ``similarity`` (Q, K): ``(values, indices)``, both (Q, k).

    Ordered by similarity, equal similarities by key index (the lower first), which is ``torch.max``'s rule: the
    first column is the 1-NN the search always returned, and the order does not depend on ``k`` (duplicate
    barcodes make exact ties common; ``torch.topk`` alone orders them arbitrarily). ``topk`` finds ``k + 1``
    candidates; the rare rows whose ``k``-th and ``k + 1``-th similarities tie are redone with a stable sort.
    """
    extra = min(k + 1, similarity.shape[1])
    values, indices = similarity.topk(extra, dim=1)
    if extra > k:
        tied = values[:, k - 1] == values[:, k]
        if tied.any():
            resorted = torch.sort(similarity[tied], dim=1, descending=True, stable=True)
            values[tied], indices[tied] = resorted.values[:, :extra], resorted.indices[:, :extra]
    values, indices = values[:, :k], indices[:, :k]
    by_index = indices.argsort(dim=1)  # within the k: index order, then a stable sort by similarity
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_value), indices.gather(1, by_value)


def top_k_neighbors(
    keys: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    chunk_size: int = 4096,
    device: str | torch.device | None = None,
    use_faiss: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) of the ``k`` most cosine-similar keys of every query, most similar first, and those
    similarities (Q, k) (exact search).

    Torch multiplies one chunk of queries at a time by all keys (memory ``chunk_size x num_keys``); equal
    similarities are ordered by key index (:func:`_top_k`). faiss (``IndexFlatIP``, also exact) is used for very
    large searches when importable, or when ``use_faiss=True``; it orders equal similarities its own way.
    """
    keys = _matrix(keys, "keys")
    queries = _matrix(queries, "queries")
    if keys.shape[1] != queries.shape[1]:
        raise ValueError(f"keys have dimension {keys.shape[1]} but queries {queries.shape[1]}")
    if not 1 <= k <= len(keys):
        raise ValueError(f"k must be in 1..{len(keys)} (the number of keys), got {k}")
    if use_faiss is None:
        use_faiss = len(keys) * len(queries) >= FAISS_MIN_PAIRS and importlib.util.find_spec("faiss") is not None
    keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(keys.shape[1])
        index.add(np.ascontiguousarray(keys))
        similarity, nearest = index.search(np.ascontiguousarray(queries), k)
        return nearest.astype(np.int64), similarity
    device = resolve_device(device)
    key_tensor = torch.from_numpy(keys).to(device)
    nearest = np.empty((len(queries), k), dtype=np.int64)
    similarity = np.empty((len(queries), k), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(queries), chunk_size):
            block = torch.from_numpy(queries[start : start + chunk_size]).to(device) @ key_tensor.T
            best, index = _top_k(block, k)
            nearest[start : start + len(index)] = index.cpu().numpy()
            similarity[start : start + len(index)] = best.float().cpu().numpy()
    return nearest, similarity


def nearest_neighbors(
    keys: np.ndarray,
    queries: np.ndarray,
    *,
    chunk_size: int = 4096,
    device: str | torch.device | None = None,
    use_faiss: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index (Q,) of the most cosine-similar key of every query, and that similarity (Q,): :func:`top_k_neighbors`
    with ``k=1`` (on a tie, the lowest key index)."""
    nearest, similarity = top_k_neighbors(keys, queries, 1, chunk_size=chunk_size, device=device, use_faiss=use_faiss)
    return nearest[:, 0], similarity[:, 0]


def one_nn_accuracy(
    keys: Any,
    key_labels: Any,
    queries: Any,
    query_labels: Any,
    *,
    chunk_size: int = 4096,
    device: str | torch.device | None = None,
    use_faiss: bool | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Cosine 1-NN classification: each query takes the label of its nearest key.

    Returns ``accuracy``, ``macro_accuracy``, ``num_keys``, ``num_queries`` (and ``predictions`` when asked).
    """
    keys, queries = _matrix(keys, "keys"), _matrix(queries, "queries")
    key_labels = _labels(key_labels, "key_labels", len(keys))
    query_labels = _labels(query_labels, "query_labels", len(queries))
    nearest, _ = nearest_neighbors(keys, queries, chunk_size=chunk_size, device=device, use_faiss=use_faiss)
    predictions = key_labels[nearest]
    result: dict[str, Any] = {
        **classification_scores(query_labels, predictions),
        "num_keys": len(keys),
        "num_queries": len(queries),
    }
    if return_predictions:
        result["predictions"] = predictions
    return result


def majority_vote(neighbour_labels: np.ndarray, k: int) -> np.ndarray:
    """The majority label (Q,) among the first ``k`` columns of ``neighbour_labels`` (Q, >= k), nearest first.

    Labels with equally many votes are settled by the nearest neighbour: the label whose best rank is smallest
    wins (``argmax`` takes the first column with the most votes, and a label's first column is its best rank).
    Counting compares the ``k`` labels of a row with each other, (Q, k, k), so no (Q, num_classes) table is built.
    """
    nearest = neighbour_labels[:, :k]
    votes = (nearest[:, :, None] == nearest[:, None, :]).sum(axis=2)  # (Q, k): the votes of each column's label
    return nearest[np.arange(len(nearest)), votes.argmax(axis=1)]


def knn_accuracy(
    keys: Any,
    key_labels: Any,
    queries: Any,
    query_labels: Any,
    *,
    ks: tuple[int, ...] = KNN_K,
    chunk_size: int = 4096,
    device: str | torch.device | None = None,
    use_faiss: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Cosine k-NN classification for every ``k`` of ``ks``: each query takes the majority label of its ``k``
    nearest keys (:func:`majority_vote`; ties go to the nearest neighbour's side).

    One search for the largest ``k`` serves every ``k``; ``k=1`` is :func:`one_nn_accuracy` exactly (the same
    search, the same tie rule). Returns ``{str(k): {"accuracy", "macro_accuracy"}}`` (string keys, as in JSON).
    """
    keys, queries = _matrix(keys, "keys"), _matrix(queries, "queries")
    key_labels = _labels(key_labels, "key_labels", len(keys))
    query_labels = _labels(query_labels, "query_labels", len(queries))
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    neighbours, _ = top_k_neighbors(
        keys, queries, max(ks), chunk_size=chunk_size, device=device, use_faiss=use_faiss
    )
    classes, codes = np.unique(key_labels, return_inverse=True)
    neighbour_codes = codes[neighbours]
    return {
        str(k): classification_scores(query_labels, classes[majority_vote(neighbour_codes, k)]) for k in ks
    }


def linear_probe(
    train_embeddings: Any,
    train_labels: Any,
    test_embeddings: Any,
    test_labels: Any,
    *,
    c: float = 1.0,
    max_iter: int = 500,
    device: str | torch.device | None = None,
    seed: int = 0,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Multinomial logistic-regression probe on frozen, standardised embeddings (the closed-world protocol).

    Fitted full-batch with L-BFGS in torch (on the GPU when there is one): the objective of scikit-learn's
    ``LogisticRegression(C=c)`` (L2 penalty ``||W||^2 / (2 C n)`` on the mean loss, so its strength does not
    change with the number of training barcodes) but faster on CPU and able to handle the 289k BIOSCAN-5M
    training barcodes. With hundreds of species and a narrow embedding the probe needs a weak penalty and a few
    hundred iterations: a fixed penalty of 1e-3 cut a 64-wide model's probe from 64% to 22% on ``dev.csv.gz``.
    Returns ``accuracy``, ``macro_accuracy``, ``num_train``, ``num_test``, ``num_classes`` (and ``predictions``
    when asked).
    """
    train_x, test_x = _matrix(train_embeddings, "train_embeddings"), _matrix(test_embeddings, "test_embeddings")
    train_y = _labels(train_labels, "train_labels", len(train_x))
    test_y = _labels(test_labels, "test_labels", len(test_x))
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train embeddings have dimension {train_x.shape[1]} but test {test_x.shape[1]}")
    classes, scale, x, y = _fit_inputs(train_x, train_y, resolve_device(device))
    head = _fit_softmax_head(x, y, len(classes), c=c, max_iter=max_iter, seed=seed)
    predictions = classes[_predict(head, scale(test_x, x.device))]
    result: dict[str, Any] = {
        **classification_scores(test_y, predictions),
        "num_train": len(train_x),
        "num_test": len(test_x),
        "num_classes": len(classes),
    }
    if return_predictions:
        result["predictions"] = predictions
    return result


class _Standardiser:
    """Per-dimension standardisation fitted on the probe's training embeddings (applied to every other set)."""

    def __init__(self, train_x: np.ndarray) -> None:
        self.mean, self.std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6

    def __call__(self, x: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy((x - self.mean) / self.std).to(device)


def _fit_inputs(
    train_x: np.ndarray, train_y: np.ndarray, device: torch.device
) -> tuple[np.ndarray, _Standardiser, torch.Tensor, torch.Tensor]:
    """What a probe fit needs from its training part: the class names (C,), the standardiser fitted on it, the
    standardised embeddings (N, H) and the class codes (N,) on ``device``."""
    classes, targets = np.unique(train_y, return_inverse=True)
    scale = _Standardiser(train_x)
    return classes, scale, scale(train_x, device), torch.from_numpy(targets.astype(np.int64)).to(device)


def _fit_softmax_head(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, c: float, max_iter: int, seed: int,
    start: torch.nn.Linear | None = None,
) -> torch.nn.Linear:
    """L-BFGS fit of a linear softmax head to standardised ``x`` (N, H) and class codes ``y`` (N,): mean
    cross-entropy plus ``||W||^2 / (2 C N)`` (scikit-learn's ``LogisticRegression(C=c)``). ``start``, a head fitted
    with another ``C``, is where the fit begins (a warm start: the same optimum, the problem is convex; over the C
    grid on ``dev.csv.gz`` 29% fewer loss evaluations, docs/evaluation.md); otherwise small random weights drawn
    with ``seed``."""
    if num_classes < 2:
        raise ValueError(f"linear probe needs at least 2 classes in the training labels, got {num_classes}")
    if not c > 0:
        raise ValueError(f"linear probe inverse regularisation c must be > 0, got {c}")
    penalty = 1.0 / (c * len(x))
    head = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    with torch.no_grad():
        if start is None:
            generator = torch.Generator().manual_seed(seed)
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
            head.bias.zero_()
        else:
            head.load_state_dict(start.state_dict())
    optimizer = torch.optim.LBFGS(
        head.parameters(),
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + 0.5 * penalty * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return head


def _predict(head: torch.nn.Linear, x: torch.Tensor) -> np.ndarray:
    """Class codes (N,) of the head's highest score for each row of ``x``."""
    with torch.inference_mode():
        return head(x).argmax(dim=1).cpu().numpy()


def holdout_keeping_every_class(labels: Any, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out rows: ``fraction`` of the rows, never a class's last member.

    One random member of every class stays in the fitting part (so every class is still seen when fitting, even
    the many species with two or three training barcodes); ``round(fraction * rest)`` of the other rows are held
    out at random. Vectorised: two permutations and one stable sort.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(codes))
    order = order[np.argsort(codes[order], kind="stable")]  # random order within each class
    first = np.ones(len(order), dtype=bool)
    first[1:] = codes[order[1:]] != codes[order[:-1]]
    rest = order[~first]  # all but one random member of each class
    held_out = np.zeros(len(codes), dtype=bool)
    held_out[rng.permutation(rest)[: round(fraction * len(rest))]] = True
    return held_out


def best_probe_c(held_out_accuracy: dict[float, float]) -> float:
    """The ``C`` with the best held-out accuracy; ties go to the smaller ``C`` (the stronger penalty)."""
    return max(held_out_accuracy, key=lambda c: (held_out_accuracy[c], -c))


def select_probe_c(
    train_embeddings: Any,
    train_labels: Any,
    *,
    grid: tuple[float, ...] = PROBE_C_GRID,
    held_out_fraction: float = 0.2,
    max_iter: int = 500,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The probe's ``C`` chosen on a held-out part of the *training* barcodes (test stays unseen).

    Every ``C`` of ``grid`` is fitted on the rest of train and scored on the held-out part; the best (ties: the
    smaller ``C``, the stronger penalty) is returned with every score, so the choice can be read in
    ``results.json``. The final probe is then refitted on the whole training split with that ``C``. The ``C`` are
    fitted from the strongest penalty up, each starting from the previous solution: the weakly penalised fits,
    the slow ones, start near their optimum.
    """
    train_x = _matrix(train_embeddings, "train_embeddings")
    train_y = _labels(train_labels, "train_labels", len(train_x))
    if not grid or any(not c > 0 for c in grid):
        raise ValueError(f"the C grid must hold positive values, got {grid}")
    held_out = holdout_keeping_every_class(train_y, held_out_fraction, seed)
    if not held_out.any():
        raise ValueError("cannot select C: every species has a single training barcode, none can be held out")
    # every class keeps a fitting member, so the fitting part has all the classes
    classes, scale, fit_x, fit_y = _fit_inputs(train_x[~held_out], train_y[~held_out], resolve_device(device))
    held_x = scale(train_x[held_out], fit_x.device)
    scores: dict[float, float] = {}
    head = None
    for c in sorted(grid):
        head = _fit_softmax_head(fit_x, fit_y, len(classes), c=c, max_iter=max_iter, seed=seed, start=head)
        scores[float(c)] = float(accuracy_score(train_y[held_out], classes[_predict(head, held_x)]))
    best = best_probe_c(scores)
    at_edge = len(set(scores.values())) > 1 and best in (min(scores), max(scores))  # not a tie across the grid
    if at_edge:
        warnings.warn(
            f"the probe's best C ({best:g}) is at the edge of the grid {sorted(scores)}; a wider grid may do better",
            stacklevel=2,
        )
    return {
        "c": best,
        "at_grid_edge": at_edge,
        "held_out_accuracy": {str(c): accuracy for c, accuracy in scores.items()},
        "num_fit": int((~held_out).sum()),
        "num_held_out": int(held_out.sum()),
    }


def reduce_dimensions(
    embeddings: Any, *, n_components: int = 50, reducer: str = "auto", random_state: int = 0, **umap_kwargs: Any
) -> tuple[np.ndarray, str]:
    """Reduce embeddings before clustering, as BIOSCAN-5M does (UMAP); returns ``(reduced, reducer_used)``.

    ``reducer``: ``"umap"`` (needs ``umap-learn``), ``"pca"`` (scikit-learn), ``"none"``, or ``"auto"`` (UMAP
    when installed, else PCA). Embeddings already at most ``n_components`` wide are returned as they are.
    """
    x = _matrix(embeddings, "embeddings")
    if reducer not in ("auto", "umap", "pca", "none"):
        raise ValueError(f"reducer must be auto, umap, pca or none, got {reducer!r}")
    if reducer == "auto":
        reducer = "umap" if importlib.util.find_spec("umap") is not None else "pca"
    n_components = min(n_components, len(x) - 2) if reducer == "umap" else min(n_components, len(x))
    if reducer == "none" or x.shape[1] <= n_components or n_components < 1:
        return x, "none"
    if reducer == "umap":
        import umap

        params = {"n_neighbors": min(15, len(x) - 1), "min_dist": 0.0, "metric": "cosine", **umap_kwargs}
        model = umap.UMAP(n_components=n_components, random_state=random_state, **params)
        return model.fit_transform(x).astype(np.float32), "umap"
    from sklearn.decomposition import PCA

    return PCA(n_components=n_components, random_state=random_state).fit_transform(x).astype(np.float32), "pca"


def cluster(
    embeddings: Any, n_clusters: int | None = None, *, distance_threshold: float | None = None, linkage: str = "ward"
) -> np.ndarray:
    """Agglomerative clustering of (reduced) embeddings into ``n_clusters`` or by ``distance_threshold``."""
    from sklearn.cluster import AgglomerativeClustering

    x = _matrix(embeddings, "embeddings")
    if (n_clusters is None) == (distance_threshold is None):
        raise ValueError("give exactly one of n_clusters and distance_threshold")
    if n_clusters is not None:
        n_clusters = max(1, min(int(n_clusters), len(x)))
        if n_clusters == 1 or len(x) == 1:
            return np.zeros(len(x), dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=n_clusters, distance_threshold=distance_threshold, linkage=linkage)
    return model.fit_predict(x).astype(np.int64)


def bin_reconstruction_ami(
    embeddings: Any,
    labels: Any,
    *,
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    linkage: str = "ward",
    reducer: str = "auto",
    n_components: int = 50,
    random_state: int = 0,
    return_clusters: bool = False,
) -> dict[str, Any]:
    """Cluster embeddings and score the clusters against ``labels`` (BINs or species) by AMI.

    By default the number of clusters is the number of distinct labels (BIOSCAN-5M); pass ``n_clusters`` or
    ``distance_threshold`` to change it. Returns ``ami``, ``n_clusters``, ``num_labels``, ``num_samples``,
    ``reducer`` (the one actually used), ``n_components``.
    """
    x = _matrix(embeddings, "embeddings")
    y = _labels(labels, "labels", len(x))
    if n_clusters is None and distance_threshold is None:
        n_clusters = len(np.unique(y))
    reduced, used = reduce_dimensions(x, n_components=n_components, reducer=reducer, random_state=random_state)
    clusters = cluster(reduced, n_clusters, distance_threshold=distance_threshold, linkage=linkage)
    result: dict[str, Any] = {
        "ami": float(adjusted_mutual_info_score(y, clusters)),
        "n_clusters": len(np.unique(clusters)),
        "num_labels": len(np.unique(y)),
        "num_samples": len(x),
        "reducer": used,
        "n_components": int(reduced.shape[1]),
        "linkage": linkage,
    }
    if return_clusters:
        result["clusters"] = clusters
    return result


def harmonic_mean(values: Any) -> float:
    """Harmonic mean of scores in [0, 1] (0 when any is 0 or below: one failed task sinks the headline)."""
    scores = np.asarray(list(values), dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(f"harmonic_mean needs finite scores, got {scores.tolist()}")
    if (scores <= 0).any():
        return 0.0
    from scipy.stats import hmean

    return float(hmean(scores))


__all__ = [
    "KNN_K",
    "PROBE_C_GRID",
    "best_probe_c",
    "bin_reconstruction_ami",
    "classification_scores",
    "cluster",
    "harmonic_mean",
    "holdout_keeping_every_class",
    "knn_accuracy",
    "linear_probe",
    "majority_vote",
    "nearest_neighbors",
    "one_nn_accuracy",
    "per_class_accuracy",
    "reduce_dimensions",
    "select_probe_c",
    "top_k_neighbors",
]
