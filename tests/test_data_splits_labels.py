"""Split resolution, label vocabularies and cleaning reports (no file I/O beyond tmp_path)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from barcodemae.data import (
    BIOSCAN5M_SPLITS,
    CleaningReport,
    LabelVocabulary,
    resolve_splits,
)
from barcodemae.data.report import reason_category


class TestResolveSplits:
    def test_single_and_meta_splits(self):
        assert resolve_splits("train") == ["train"]
        assert resolve_splits("all") == list(BIOSCAN5M_SPLITS)
        assert resolve_splits(None) == list(BIOSCAN5M_SPLITS)
        assert resolve_splits("seen") == ["train", "val", "test"]
        assert resolve_splits("unseen") == ["key_unseen", "val_unseen", "test_unseen"]

    def test_plus_joined_and_lists_are_ordered_and_unique(self):
        assert resolve_splits("other_heldout+pretrain") == ["pretrain", "other_heldout"]
        assert resolve_splits("seen+train+test_unseen") == ["train", "val", "test", "test_unseen"]
        assert resolve_splits(["val", "pretrain"]) == ["pretrain", "val"]

    @pytest.mark.parametrize("bad", ["Train", "pretrain+trian", "", "seen+", ["train", "bogus"]])
    def test_unknown_names_raise_listing_valid_names(self, bad):
        with pytest.raises(ValueError) as error:
            resolve_splits(bad)
        message = str(error.value)
        assert "key_unseen" in message and "other_heldout" in message and "unseen" in message

    def test_error_names_the_offending_part(self):
        with pytest.raises(ValueError, match="'trian'"):
            resolve_splits("pretrain+trian")


class TestLabelVocabulary:
    def test_ids_are_sorted_and_independent_of_order(self):
        a = LabelVocabulary({"genus": ["Bombus", "Apis", None, "Bombus"]})
        b = LabelVocabulary({"genus": ["Apis", "Bombus"]})
        assert a == b
        assert a.names("genus") == ["Apis", "Bombus"]
        assert a.num_labels("genus") == 2

    def test_encode_missing_and_unknown(self):
        vocab = LabelVocabulary({"species": ["Apis mellifera", "Bombus terrestris"]})
        ids = vocab.encode("species", ["Bombus terrestris", None, "Vespa crabro", "Apis mellifera"])
        assert ids.dtype == np.int64
        assert ids.tolist() == [1, -1, -1, 0]
        assert vocab.encode("species", ["Vespa crabro"], unknown=-2).tolist() == [-2]
        assert vocab.encode("species", "Apis mellifera") == 0
        with pytest.raises(KeyError, match="Vespa crabro"):
            vocab.encode("species", ["Vespa crabro"], unknown=None)
        with pytest.raises(KeyError, match="rank 'genus'"):
            vocab.encode("genus", ["Apis"])

    def test_encode_arrow_and_decode(self):
        vocab = LabelVocabulary({"genus": ["Apis", "Bombus", "Vespa"]})
        ids = vocab.encode("genus", pa.chunked_array([["Vespa", None], ["Apis"]]))
        assert ids.tolist() == [2, -1, 0]
        assert vocab.decode("genus", ids) == ["Vespa", None, "Apis"]

    def test_from_columns_matches_constructor(self):
        vocab = LabelVocabulary.from_columns({"genus": [pa.array(["b", None, "a"]), ["c", "a"]]})
        assert vocab.names("genus") == ["a", "b", "c"]

    def test_save_load_roundtrip(self, tmp_path):
        vocab = LabelVocabulary({"genus": ["Apis", "Bombus"], "dna_bin": ["BOLD:AAA0001"]})
        path = vocab.save(tmp_path / "model")
        assert path.name == "label_vocab.json"
        assert LabelVocabulary.load(tmp_path / "model") == vocab
        assert LabelVocabulary.load(path).ranks == ("genus", "dna_bin")

    def test_load_rejects_missing_and_edited_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="label_vocab.json"):
            LabelVocabulary.load(tmp_path)
        (tmp_path / "label_vocab.json").write_text(json.dumps({"ranks": {"genus": ["b", "a"]}}))
        with pytest.raises(ValueError, match="not sorted"):
            LabelVocabulary.load(tmp_path)
        (tmp_path / "label_vocab.json").write_text(json.dumps({"genus": ["a"]}))
        with pytest.raises(ValueError, match="not a barcodemae label vocabulary"):
            LabelVocabulary.load(tmp_path)


class TestCleaningReport:
    def test_counts_summary_and_json(self, tmp_path):
        report = CleaningReport(source="x.fasta", read=4, kept=2)
        report.add_rejected("r1", "non-IUPAC character(s) 'X' (first at position 3); allowed: ACGT")
        report.add_rejected("r2", "sequence is all N")
        assert report.num_rejected == 2
        assert report.rejected_by_reason == {"non_iupac": 1, "all_n": 1}
        text = report.summary()
        assert "read 4, kept 2, rejected 2" in text and "r1" in text and "all N" in text
        saved = json.loads(report.save(tmp_path).read_text())
        assert saved["rejected_records"][1] == ["r2", "sequence is all N"]

    def test_merge_and_reset(self):
        a = CleaningReport(read=3, kept=2, truncated=1, truncated_bases=5)
        a.add_rejected("x", "empty sequence")
        b = CleaningReport(read=1, kept=1, duplicate_ids=["y"])
        a.merge(b)
        assert (a.read, a.kept, a.truncated_bases, a.duplicate_ids) == (4, 3, 5, ["y"])
        a.reset()
        assert (a.read, a.kept, a.num_rejected, a.rejected) == (0, 0, 0, [])

    @pytest.mark.parametrize(
        "reason, category",
        [
            ("missing sequence (None)", "missing"),
            ("empty sequence", "empty"),
            ("too short: 10 bp < minimum 300 bp", "too_short"),
            ("marker 'matK' is not 'COI-5P'", "wrong_marker"),
            ("something new", "other"),
        ],
    )
    def test_reason_categories(self, reason, category):
        assert reason_category(reason) == category
