"""The choices and defaults of the evaluation protocol that ``eval/run.py``'s flags offer, with no heavy imports.

Why apart from :mod:`.metrics` and :mod:`.baselines` (which use them and re-export them): those import torch and
scikit-learn, and building ``eval/run.py``'s parser, which shows these values in ``--help``, must not, so that
``--help`` answers at once.
"""

from __future__ import annotations

KNN_K = (1, 3, 5, 7)
"""The neighbourhood sizes of :func:`~barcodemae.eval.metrics.knn_accuracy` reported beside the protocol's 1-NN
(``--knn-k``)."""

PROBE_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Inverse L2 strengths tried by :func:`~barcodemae.eval.metrics.select_probe_c` (``--probe-c auto``, the default).
On ``dev.csv.gz`` a 64-wide encoder's held-out species accuracy rose from 39% at C=0.1 to 88% at C=100: no fixed C
suits every embedding width and training-set size."""

LDA_SOLVERS = ("svd", "eigen")
"""Solvers of the ``kmer-lda`` baseline's genus LDA (:mod:`.baselines`, ``--lda-solver``). ``svd``: scikit-learn's
default (no covariance matrix formed; the transform is centred on the training mean and whitens the within-class
scatter); ``eigen``: the generalised eigenproblem with Ledoit-Wolf shrinkage of the within-class covariance
(``shrinkage="auto"``; the transform is not centred)."""

FINETUNE_BATCH_SIZE = 64
"""Barcodes per step of the closed-world species fine-tuning (:func:`~barcodemae.eval.finetune.fine_tune_classifier`,
``--finetune-batch-size``)."""

__all__ = ["FINETUNE_BATCH_SIZE", "KNN_K", "LDA_SOLVERS", "PROBE_C_GRID"]
