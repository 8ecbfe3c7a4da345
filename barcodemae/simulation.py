"""Simulated COI-5P barcodes on a taxonomy tree, written in the BIOSCAN-5M metadata format.

Why: ``python train.py`` with no arguments must pretrain *and evaluate* something meaningful without any file
outside the package. Uniform random strings would make the evaluation meaningless, so barcodes evolve down a
tree (root -> genus -> species -> BIN -> specimen) with the features that matter for barcode models:

* a ~658 bp protein-coding root with an insect-like AT bias;
* substitutions concentrated on third codon positions (synonymous sites), so k-mer statistics look COI-like;
* nested divergence (genera ~12%, species ~4%, BINs ~1.5%, specimens ~0.3% from their parent), so genus 1-NN
  and BIN clustering are learnable but not trivial;
* rare codon indels, single-base sequencing indels, ragged read ends and ambiguous ``N`` bases.

Splits follow BIOSCAN-5M semantics: seen species go to ``pretrain`` / ``train`` / ``val`` / ``test`` (every
val/test species also occurs in train); unseen species of seen genera go to ``key_unseen`` / ``val_unseen`` /
``test_unseen``; species of genera absent from train go to ``other_heldout``. Records of one species with an
identical barcode never straddle two splits. ``pretrain`` rows have no species name (unlabelled use).

Everything is drawn from one seeded :class:`numpy.random.Generator`, vectorised over all nodes of a tree level;
only the rare indel rows and the final string conversion touch rows one by one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
GAP = 4  # code for a deleted base, dropped when rows become strings
N_CODE = 5  # code for an ambiguous base
CODE_TO_ASCII = np.frombuffer(b"ACGT-N", dtype=np.uint8)

BIOSCAN5M_COLUMNS: tuple[str, ...] = (
    "processid", "sampleid", "taxon", "phylum", "class", "order", "family", "subfamily", "genus", "species",
    "dna_bin", "dna_barcode", "country", "province_state", "coord-lat", "coord-lon", "image_measurement_value",
    "area_fraction", "scale_factor", "inferred_ranks", "split", "index_bioscan_1M_insect", "chunk",
)
"""The 23 BIOSCAN-5M metadata columns, in the official order."""

ORDERS = ("Diptera", "Hymenoptera", "Coleoptera", "Lepidoptera", "Hemiptera")


@dataclass(frozen=True)
class SimulationConfig:
    """Shape of the simulated tree and its mutation model (defaults: ~3,000 barcodes, a CPU-minute demo).

    Rates are expected substitutions per site on each branch, before codon-position weighting.
    ``codon_weights`` are the relative rates of codon positions 1, 2, 3 (normalised to mean 1).
    """

    num_genera: int = 40
    species_per_genus: float = 3.0
    specimens_per_species: float = 25.0
    bins_per_species: float = 0.3  # expected *extra* BINs per species (Poisson), i.e. ~1.3 BINs each
    length: int = 658
    genus_divergence: float = 0.12
    species_divergence: float = 0.04
    bin_divergence: float = 0.015
    specimen_divergence: float = 0.003
    codon_weights: tuple[float, float, float] = (0.25, 0.1, 2.65)
    base_frequencies: tuple[float, float, float, float] = (0.30, 0.16, 0.16, 0.38)  # A C G T (insect COI)
    indel_probability: float = 0.01  # per specimen: one codon (3 bp) or single-base indel
    n_probability: float = 0.05  # per specimen: carries scattered ambiguous N bases
    n_rate: float = 0.005  # per-site N rate inside such specimens
    ragged_end_probability: float = 0.2  # per specimen: read starts/ends up to 60 bp inside the amplicon
    heldout_genus_fraction: float = 0.15
    unseen_species_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_genera < 3:
            raise ValueError(f"num_genera must be at least 3 (seen, unseen and held-out genera), got {self.num_genera}")
        if self.length < 300:
            raise ValueError(f"length must be >= 300 bp (the BIOSCAN minimum), got {self.length}")
        for name in ("species_per_genus", "specimens_per_species"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def site_weights(length: int, codon_weights: tuple[float, float, float]) -> np.ndarray:
    """Per-site relative substitution rate (mean 1) from codon-position weights."""
    weights = np.tile(np.asarray(codon_weights, dtype=np.float64), -(-length // 3))[:length]
    return weights / weights.mean()


def mutate(parents: np.ndarray, rate: float, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy ``(n, L)`` base codes, substituting each site with probability ``rate * weight`` (never to itself).

    Gap and N codes are inherited unchanged: they are read artefacts, not heritable states.
    """
    children = parents.copy()
    hit = (rng.random(parents.shape) < np.clip(rate * weights, 0.0, 0.75)) & (parents < GAP)
    shift = rng.integers(1, 4, size=parents.shape, dtype=np.uint8)
    children[hit] = (parents[hit] + shift[hit]) % 4
    return children


def _counts(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    """At least one child per node, ``1 + Poisson(mean - 1)``."""
    return 1 + rng.poisson(max(mean - 1.0, 0.0), size=n)


def _apply_read_artefacts(codes: np.ndarray, config: SimulationConfig, rng: np.random.Generator) -> list[str]:
    """Ns, ragged ends and indels on specimen rows, then ASCII strings (gaps removed)."""
    n, length = codes.shape
    carries_n = rng.random(n) < config.n_probability
    n_sites = (rng.random(codes.shape) < config.n_rate) & carries_n[:, None]
    codes[n_sites] = N_CODE
    ragged = rng.random(n) < config.ragged_end_probability
    cut_start = np.where(ragged, rng.integers(0, 61, size=n), 0)
    cut_end = np.where(ragged, rng.integers(0, 61, size=n), 0)
    position = np.arange(length)[None, :]
    codes[(position < cut_start[:, None]) | (position >= (length - cut_end)[:, None])] = GAP
    text = CODE_TO_ASCII[codes]
    # Leading/trailing N are stripped, as in the released BIOSCAN-5M / BOLD barcodes.
    sequences = [row.tobytes().decode("ascii").replace("-", "").strip("N") for row in text]
    # Indels are rare (about 1% of rows), so editing those few strings is cheaper than a ragged array.
    for row in np.flatnonzero(rng.random(n) < config.indel_probability):
        size = 3 if rng.random() < 0.5 else 1
        sequence = sequences[row]
        at = int(rng.integers(30, max(31, len(sequence) - 30)))
        if rng.random() < 0.5:
            sequences[row] = sequence[:at] + sequence[at + size :]
        else:
            sequences[row] = sequence[:at] + BASES[rng.integers(0, 4, size)].tobytes().decode() + sequence[at:]
    return sequences


def _assign_splits(
    genus: np.ndarray, species: np.ndarray, sequences: list[str], config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """BIOSCAN-5M split of every specimen (see the module docstring)."""
    num_genera = int(genus.max()) + 1
    num_species = int(species.max()) + 1
    species_genus = np.zeros(num_species, dtype=np.int64)
    species_genus[species] = genus
    heldout_genus = np.zeros(num_genera, dtype=bool)
    heldout_genus[rng.permutation(num_genera)[: max(1, round(config.heldout_genus_fraction * num_genera))]] = True
    unseen_species = (rng.random(num_species) < config.unseen_species_fraction) & ~heldout_genus[species_genus]
    # A genus needs one seen species, or its unseen species would be "other_heldout" in disguise.
    first_species_of_genus = np.unique(species_genus, return_index=True)[1]
    unseen_species[first_species_of_genus] = False

    # Group specimens by (species, identical barcode) so duplicates land in one split together.
    group_keys = pd.Series(species.astype(str)) + ":" + pd.Series(sequences)
    group = pd.factorize(group_keys)[0]
    num_groups = int(group.max()) + 1
    group_species = np.zeros(num_groups, dtype=np.int64)
    group_species[group] = species
    draw = rng.random(num_groups)

    seen_names = np.array(["pretrain", "train", "val", "test"])
    seen_split = seen_names[np.searchsorted(np.cumsum([0.35, 0.40, 0.10, 0.15]), draw, side="right").clip(0, 3)]
    unseen_names = np.array(["key_unseen", "val_unseen", "test_unseen"])
    unseen_split = unseen_names[np.searchsorted(np.cumsum([0.5, 0.2, 0.3]), draw, side="right").clip(0, 2)]
    group_split = np.where(unseen_species[group_species], unseen_split, seen_split)
    group_split = np.where(heldout_genus[species_genus[group_species]], "other_heldout", group_split)

    # Every val/test species must occur in train: move the first group of a species lacking one into train.
    seen = ~unseen_species[group_species] & ~heldout_genus[species_genus[group_species]]
    has_train = np.zeros(num_species, dtype=bool)
    has_train[group_species[group_split == "train"]] = True
    first_group = np.unique(group_species, return_index=True)[1]
    fix = first_group[seen[first_group] & ~has_train[group_species[first_group]]]
    group_split[fix] = "train"
    return group_split[group]


def simulate_barcodes(config: SimulationConfig | None = None, **overrides) -> pd.DataFrame:
    """A BIOSCAN-5M-format table of simulated barcodes; ``overrides`` replace :class:`SimulationConfig` fields."""
    config = SimulationConfig(**{**(asdict(config) if config else {}), **overrides})
    rng = np.random.default_rng(config.seed)
    weights = site_weights(config.length, config.codon_weights)

    root = rng.choice(4, size=(1, config.length), p=np.asarray(config.base_frequencies)).astype(np.uint8)
    genera = mutate(np.repeat(root, config.num_genera, axis=0), config.genus_divergence, weights, rng)
    species_parent = np.repeat(np.arange(config.num_genera), _counts(rng, config.num_genera, config.species_per_genus))
    species_seqs = mutate(genera[species_parent], config.species_divergence, weights, rng)
    num_species = len(species_parent)
    bin_parent = np.repeat(np.arange(num_species), 1 + rng.poisson(config.bins_per_species, size=num_species))
    bin_seqs = mutate(species_seqs[bin_parent], config.bin_divergence, weights, rng)
    # Specimens are spread over a species' BINs; the per-species count is drawn first, then split over BINs.
    per_species = _counts(rng, num_species, config.specimens_per_species)
    bin_share = rng.random(len(bin_parent)) + 0.2
    bin_share /= np.bincount(bin_parent, weights=bin_share)[bin_parent]
    per_bin = np.maximum(1, np.round(bin_share * per_species[bin_parent])).astype(np.int64)
    specimen_bin = np.repeat(np.arange(len(bin_parent)), per_bin)
    specimen_codes = mutate(bin_seqs[specimen_bin], config.specimen_divergence, weights, rng)
    specimen_species = bin_parent[specimen_bin]
    specimen_genus = species_parent[specimen_species]

    sequences = _apply_read_artefacts(specimen_codes, config, rng)
    split = _assign_splits(specimen_genus, specimen_species, sequences, config, rng)

    n = len(sequences)
    genus_names = np.array([f"Simgenus{g:03d}" for g in range(config.num_genera)], dtype=object)
    genus_order = rng.integers(0, len(ORDERS), size=config.num_genera)
    species_names = genus_names[species_parent] + np.array([f" sp{s:04d}" for s in range(num_species)], dtype=object)
    genus_col = genus_names[specimen_genus]
    species_col = np.where(split == "pretrain", None, species_names[specimen_species])
    order = np.array(ORDERS, dtype=object)[genus_order[specimen_genus]]
    ids = np.char.mod("%06d", np.arange(n))
    table = pd.DataFrame(
        {
            "processid": np.char.add("SIM", ids).astype(object) + "-25",
            "sampleid": np.char.add("SIMS", ids).astype(object),
            "taxon": np.where(species_col == None, genus_col, species_col),
            "phylum": "Arthropoda",
            "class": "Insecta",
            "order": order,
            "family": order + "_simfamily" + (specimen_genus % 4).astype(str).astype(object),
            "subfamily": None,
            "genus": genus_col,
            "species": species_col,
            "dna_bin": np.char.mod("BOLD:SIM%05d", specimen_bin).astype(object),
            "dna_barcode": sequences,
            "country": None,
            "province_state": None,
            "coord-lat": None,
            "coord-lon": None,
            "image_measurement_value": None,
            "area_fraction": None,
            "scale_factor": None,
            "inferred_ranks": np.where(split == "pretrain", 1, 0),
            "split": split,
            "index_bioscan_1M_insect": None,
            "chunk": None,
        },
        columns=list(BIOSCAN5M_COLUMNS),
    )
    # Shuffle rows so file order carries no taxonomy (readers that keep "first in file order" stay unbiased).
    return table.iloc[rng.permutation(n)].reset_index(drop=True)


def write_simulated_dataset(path: str | Path, config: SimulationConfig | None = None, **overrides) -> Path:
    """Simulate and write a BIOSCAN-5M metadata CSV (``.csv`` or ``.csv.gz``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate_barcodes(config, **overrides).to_csv(path, index=False)
    return path


__all__ = [
    "BIOSCAN5M_COLUMNS", "SimulationConfig", "mutate", "simulate_barcodes", "site_weights", "write_simulated_dataset"
]
