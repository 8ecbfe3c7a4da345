"""Fast (``tokenizers``-backed) tokenizer for DNA barcodes: k-mers, characters or barcode-trained BPE.

This file is copied into every saved model folder (``auto_map``), so it imports only the standard library,
numpy, ``tokenizers``, ``transformers`` and its sibling ``sequence_cleaning``.

Every input string goes through :func:`sequence_cleaning.clean_barcode` first, so ``tokenizer("acg-tn...")``
sees the same sequence a data reader would produce, and bad input fails with a message naming the item.

Schemes
-------
``kmer``  k-mers of length ``k`` every ``stride`` bases: ``stride == k`` is non-overlapping (BarcodeBERT /
          BarcodeMAE, k=6), ``stride == 1`` is overlapping (DNABERT). The vocabulary is the 4**k ACGT k-mers; a
          k-mer containing an ambiguity code (N, R, Y, ...) is ``[UNK]``. The tail shorter than ``k`` is dropped.
          With ``random_frame_offset=True`` (training) the first 0..k-1 bases are skipped at random, the
          reading-frame augmentation of BarcodeBERT; evaluation uses offset 0.
``char``  one token per base (ENBED-style); the vocabulary holds ACGT and every IUPAC ambiguity code.
``bpe``   a byte-pair encoding trained on barcodes (DNABERT-2 style), built from a ``tokenizer.json``.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from .sequence_cleaning import DEFAULT_MAX_LENGTH, IUPAC_LETTERS, InvalidBarcodeError, clean_barcode

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SCHEMES = ("kmer", "char", "bpe")


def _with_special_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """Add ``[CLS] x [SEP]`` framing; BarcodeMAE never masks these, and they make pooling robust to empty frames."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return tokenizer


def build_kmer_backend(k: int, stride: int) -> Tokenizer:
    """A WordLevel tokenizer over all ACGT k-mers (lexicographic order after the five special tokens)."""
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + kmers)}
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    if stride == k:
        # Non-overlapping k-mers are expressible in tokenizer.json itself, so the file is usable on its own.
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(f".{{{k}}}"), behavior="isolated")
    else:
        # Overlapping windows cannot be produced by a pre-tokenizer; the Python class writes them space-separated.
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return _with_special_tokens(tokenizer)


def build_char_backend() -> Tokenizer:
    """One token per IUPAC letter."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + list(IUPAC_LETTERS))}
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return _with_special_tokens(tokenizer)


def overlapping_kmers(sequence: str, k: int, stride: int) -> str:
    """Space-separated k-mers every ``stride`` bases, built with numpy windows rather than a Python loop."""
    codes = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k)[::stride]
    spaced = np.full((windows.shape[0], k + 1), ord(" "), dtype=np.uint8)
    spaced[:, :k] = windows
    return spaced.tobytes()[:-1].decode("ascii")


class BarcodeTokenizer(PreTrainedTokenizerFast):
    """Tokenizer for DNA barcodes; see the module docstring for the schemes and the cleaning policy.

    Build one with :meth:`kmer`, :meth:`char` or :meth:`from_tokenizer_file` (BPE), then ``save_pretrained``;
    load it back with ``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)``.
    """

    vocab_files_names = {"tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = None

    def __init__(
        self,
        tokenizer_file: str | None = None,
        tokenizer_object: Tokenizer | None = None,
        scheme: str = "kmer",
        k: int = 6,
        stride: int | None = None,
        max_bp: int = DEFAULT_MAX_LENGTH,
        random_frame_offset: bool = False,
        **kwargs: Any,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        stride = k if stride is None else stride
        if scheme == "kmer" and not (1 <= stride <= k):
            raise ValueError(f"k-mer stride must be in [1, k={k}], got {stride}")
        if max_bp < 1:
            raise ValueError(f"max_bp must be positive, got {max_bp}")
        for name in ("pad", "unk", "cls", "sep", "mask"):
            kwargs.setdefault(f"{name}_token", f"[{name.upper()}]")
        kwargs.setdefault("model_max_length", self._max_tokens(scheme, k, stride, max_bp))
        super().__init__(tokenizer_file=tokenizer_file, tokenizer_object=tokenizer_object, **kwargs)
        self.scheme = scheme
        self.k = k if scheme == "kmer" else 1
        self.stride = stride if scheme == "kmer" else 1
        self.max_bp = max_bp
        self.random_frame_offset = random_frame_offset
        self.init_kwargs.update(
            scheme=scheme, k=self.k, stride=self.stride, max_bp=max_bp, random_frame_offset=random_frame_offset
        )
        self._token_lengths: np.ndarray | None = None

    @classmethod
    def convert_to_native_format(cls, trust_remote_code: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Load ``tokenizer.json`` exactly as saved.

        transformers otherwise rebuilds a custom class's backend from the vocabulary alone (as BPE), which would
        drop the k-mer pre-tokenizer and WordLevel model.
        """
        return dict(kwargs)

    @staticmethod
    def _max_tokens(scheme: str, k: int, stride: int, max_bp: int) -> int:
        if scheme == "kmer":
            return (max_bp - k) // stride + 1 + 2
        return max_bp + 2

    # ----------------------------------------------------------------------------------------------- builders
    @classmethod
    def kmer(cls, k: int = 6, stride: int | None = None, **kwargs: Any) -> "BarcodeTokenizer":
        """k-mer tokenizer; ``stride=None`` means non-overlapping (``stride=k``), ``stride=1`` overlapping."""
        if not 1 <= k <= 8:
            raise ValueError(f"k must be in [1, 8] (4**k vocabulary), got {k}")
        stride = k if stride is None else stride
        if not 1 <= stride <= k:
            raise ValueError(f"k-mer stride must be in [1, k={k}], got {stride}")
        return cls(tokenizer_object=build_kmer_backend(k, stride), scheme="kmer", k=k, stride=stride, **kwargs)

    @classmethod
    def char(cls, **kwargs: Any) -> "BarcodeTokenizer":
        """Character-level tokenizer (one token per base)."""
        return cls(tokenizer_object=build_char_backend(), scheme="char", **kwargs)

    @classmethod
    def from_tokenizer_file(cls, path: str, scheme: str = "bpe", **kwargs: Any) -> "BarcodeTokenizer":
        """Wrap an existing ``tokenizer.json`` (e.g. a barcode BPE) with the barcode cleaning policy.

        The file must define ``[PAD] [UNK] [CLS] [SEP] [MASK]``; a ``[CLS] $A [SEP]`` template is added if the
        file has no post-processor.
        """
        backend = Tokenizer.from_file(str(path))
        missing = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{path}: tokenizer lacks special token(s) {missing}")
        if backend.post_processor is None:
            _with_special_tokens(backend)
        return cls(tokenizer_object=backend, scheme=scheme, **kwargs)

    # --------------------------------------------------------------------------------------- preprocessing
    def prepare_barcode(self, text: str, index: int = 0, frame_offset: int | None = None) -> str:
        """Clean one barcode and lay it out for the backend (reading frame, k-mer windows)."""
        sequence = clean_barcode(text, record_id=f"input {index}", max_length=self.max_bp).sequence
        if self.scheme != "kmer":
            return sequence
        if frame_offset is None:
            frame_offset = random.randrange(self.k) if self.random_frame_offset else 0
        sequence = sequence[frame_offset:]
        if len(sequence) < self.k:
            raise InvalidBarcodeError(
                f"input {index}", f"sequence of {len(sequence)} bp (after frame offset) is shorter than k={self.k}"
            )
        if self.stride == self.k:
            return sequence[: len(sequence) - len(sequence) % self.k]
        return overlapping_kmers(sequence, self.k, self.stride)

    def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any):  # type: ignore[override]
        frame_offset = kwargs.pop("frame_offset", None)
        if kwargs.get("is_split_into_words"):
            raise ValueError("BarcodeTokenizer takes whole barcodes, not pre-split words")
        text = self._prepare_any(text, frame_offset)
        if text_pair is not None:
            text_pair = self._prepare_any(text_pair, frame_offset)
        return super()._encode_plus(text, text_pair, **kwargs)

    def _prepare_any(self, text: Any, frame_offset: int | None) -> Any:
        if isinstance(text, str):
            return self.prepare_barcode(text, 0, frame_offset)
        if isinstance(text, (list, tuple)):
            return [self.prepare_barcode(t, i, frame_offset) for i, t in enumerate(text)]
        raise TypeError(f"barcodes must be a string or a list of strings, got {type(text).__name__}")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Rebuild the nucleotide string; overlapping k-mers contribute ``stride`` new bases each."""
        tokens = [t for t in tokens if t not in self.all_special_tokens]
        if not tokens:
            return ""
        if self.scheme == "kmer" and self.stride < self.k:
            return tokens[0] + "".join(t[-self.stride :] for t in tokens[1:])
        return "".join(tokens)

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        tokens = self.convert_ids_to_tokens(list(token_ids), skip_special_tokens=skip_special_tokens)
        return self.convert_tokens_to_string(tokens)

    # ------------------------------------------------------------------------------- nucleotide coordinates
    def token_lengths(self) -> np.ndarray:
        """Bases each vocabulary id advances the read by (0 for special tokens), indexed by token id."""
        if self._token_lengths is None:
            lengths = np.zeros(len(self), dtype=np.int64)
            for token, index in self.get_vocab().items():
                if token not in self.all_special_tokens:
                    lengths[index] = self.stride if self.scheme == "kmer" else len(token)
            self._token_lengths = lengths
        return self._token_lengths

    def nucleotide_spans(self, input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end base (half-open) each token covers, ``-1`` for special and pad tokens.

        Vectorised over a ``(batch, length)`` array; masking strategies work in these coordinates so they are
        correct for overlapping and non-overlapping k-mers and for BPE alike.
        """
        ids = np.asarray(input_ids)
        advance = self.token_lengths()[ids]
        starts = np.cumsum(advance, axis=-1) - advance
        width = self.k if self.scheme == "kmer" else advance
        ends = starts + width
        special = advance == 0
        return np.where(special, -1, starts), np.where(special, -1, ends)

    def describe(self) -> dict[str, Any]:
        """What a model config records about its tokenizer."""
        return {"scheme": self.scheme, "k": self.k, "stride": self.stride, "max_bp": self.max_bp, "vocab_size": len(self)}


def tokenizer_summary_json(tokenizer: BarcodeTokenizer) -> str:
    """Compact JSON of :meth:`BarcodeTokenizer.describe`, used in logs and model cards."""
    return json.dumps(tokenizer.describe(), sort_keys=True)
