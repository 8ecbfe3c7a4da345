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
          reading-frame augmentation of BarcodeBERT; evaluation uses offset 0. ``frame_offset=`` takes one offset
          or one per barcode, and ``draw_frame_offsets`` is the augmentation's rule (pretraining and fine-tuning).
``char``  one token per base (ENBED-style); the vocabulary holds ACGT and every IUPAC ambiguity code.
``bpe``   a byte-pair encoding trained on barcodes (DNABERT-2 style), built from a ``tokenizer.json`` (the
          BarcodeMAE authors' byte-level files, or one trained with :mod:`barcodemae.tokenization.bpe`). Special
          token ids are whatever the file says (the reference files use UNK=0 CLS=1 SEP=2 PAD=3 MASK=4); an
          ambiguity code outside the vocabulary becomes one ``[UNK]`` per base.

``tokenizer.json`` on its own
-----------------------------
The saved ``tokenizer.json`` of the k-mer (non-overlapping) and character schemes and of trained BPE also works
with plain ``tokenizers.Tokenizer.from_file``: its normalizer upper-cases, reads U as T and removes gaps and
whitespace, and the k-mer pre-tokenizer drops the incomplete tail k-mer. It does not validate letters, trim
``N`` or truncate to ``max_bp`` (that is the Python class's job), and overlapping k-mers need the class, which
lays the windows out before the backend sees them.

Speed
-----
For k-mers and characters the ids are a pure function of the bases, so batches are encoded with numpy
(``fast_encoding.py``); BPE uses the backend's ``encode_batch_fast``. Both give exactly the backend's ids (tested);
pairs, ``return_special_tokens_mask``, ``return_length``, overflowing tokens and left truncation go through the
backend. ``tokenizer.use_fast_path = False`` forces the backend everywhere. The reading-frame offsets of a batch
are drawn at once from numpy's global generator, which ``transformers.set_seed`` seeds.

Framing
-------
``framing`` says which special tokens surround each barcode: ``"cls_sep"`` (default, ``[CLS] x [SEP]``),
``"cls"`` (a leading ``[CLS]`` only) or ``"none"``. The last two reproduce the inputs of the authors' BarcodeBERT /
BarcodeMAE k-mer models (no framing; a leading ``[CLS]`` with their ``use_cls_token``), which checkpoints converted
by ``barcodemae-convert`` need for exact outputs. It is saved with the tokenizer.

Coordinates
-----------
``nucleotide_spans`` and ``return_offsets_mapping=True`` give base positions in the *cleaned* barcode (after gap
removal and N trimming), including the reading-frame offset, for every scheme.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, ClassVar

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import BatchEncoding, PreTrainedTokenizerFast
from transformers.tokenization_utils_base import TruncationStrategy
from transformers.utils import PaddingStrategy

from .fast_encoding import char_lookup, concatenate, frame_batch, kmer_ids
from .sequence_cleaning import (
    DEFAULT_MAX_LENGTH,
    IUPAC_LETTERS,
    InvalidBarcodeError,
    clean_barcode,
)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NOT_IUPAC_TOKEN = re.compile(f"[^{IUPAC_LETTERS}]")
SCHEMES = ("kmer", "char", "bpe")
#: The special tokens before and after each barcode, by framing name (see "Framing" in the module docstring).
FRAMINGS: dict[str, tuple[str | None, str | None]] = {
    "cls_sep": ("[CLS]", "[SEP]"),
    "cls": ("[CLS]", None),
    "none": (None, None),
}


def _with_special_tokens(tokenizer: Tokenizer, framing: str = "cls_sep") -> Tokenizer:
    """Set the backend's framing template (``[CLS] x [SEP]`` by default).

    BarcodeMAE never masks ``[CLS]``/``[SEP]``, and they make pooling robust to empty frames; the other framings
    exist to reproduce models trained without them.
    """
    lead, trail = FRAMINGS[framing]
    used = [token for token in (lead, trail) if token is not None]
    single = " ".join(token for token in (lead, "$A", trail) if token is not None)
    pair = " ".join(token for token in (lead, "$A", trail, "$B", trail) if token is not None)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(token, tokenizer.token_to_id(token)) for token in used]
    )
    return tokenizer


def dna_normalizer(remove_whitespace: bool = True) -> normalizers.Normalizer:
    """Upper-case, U->T and gap removal inside ``tokenizer.json``, so the file alone accepts raw barcodes.

    It is idempotent on cleaned input, so the Python class (which cleans first) gets the same tokens. ``N`` is
    deliberately *not* trimmed here: after a reading-frame offset a prepared string may start with an internal
    ``N``, and trimming it would shift the frame. Overlapping k-mers keep whitespace (it separates the windows).
    """
    steps = [normalizers.Replace(Regex(r"[\s.\-]+" if remove_whitespace else r"[.\-]+"), "")]
    steps += [normalizers.Replace(letter.lower(), letter) for letter in IUPAC_LETTERS]
    steps += [normalizers.Replace(Regex("[uU]"), "T")]
    return normalizers.Sequence(steps)


_KMER_SPEC = re.compile(r"kmer(?:(?P<k>\d+)|:(?P<k_colon>\d+)(?::(?P<stride_colon>\d+))?|:(?P<opts>[^:]*=[^:]*))?")
"""``kmer6``, ``kmer:6``, ``kmer:6:1``, ``kmer:k=6,stride=1`` (and bare ``kmer``: 6-mers)."""


def build_kmer_backend(k: int, stride: int) -> Tokenizer:
    """A WordLevel tokenizer over all ACGT k-mers (lexicographic order after the five special tokens)."""
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + kmers)}
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    if stride == k:
        # Non-overlapping k-mers are expressible in tokenizer.json itself, so the file is usable on its own:
        # keep every complete k-mer, drop the tail shorter than k (invert=True + "removed").
        tokenizer.normalizer = dna_normalizer()
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(f".{{{k}}}"), behavior="removed", invert=True)
    else:
        # Overlapping windows cannot be produced by a pre-tokenizer; the Python class writes them space-separated.
        tokenizer.normalizer = dna_normalizer(remove_whitespace=False)
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return _with_special_tokens(tokenizer)


def build_char_backend() -> Tokenizer:
    """One token per IUPAC letter."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + list(IUPAC_LETTERS))}
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = dna_normalizer()
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

    vocab_files_names: ClassVar[dict[str, str]] = {"tokenizer_file": "tokenizer.json"}
    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]
    slow_tokenizer_class = None
    # Encode k-mers/characters with numpy and BPE with encode_batch_fast (see fast_encoding.py); set False to
    # send every call through the tokenizers backend instead (same ids, used to test and benchmark the two).
    use_fast_path: bool = True

    def __init__(
        self,
        tokenizer_file: str | None = None,
        tokenizer_object: Tokenizer | None = None,
        scheme: str | None = None,
        k: int = 6,
        stride: int | None = None,
        max_bp: int = DEFAULT_MAX_LENGTH,
        random_frame_offset: bool = False,
        framing: str = "cls_sep",
        **kwargs: Any,
    ) -> None:
        if scheme is None:
            if tokenizer_file is not None:  # from_pretrained of a folder whose config this class did not write
                raise ValueError(
                    f"{tokenizer_file}: its tokenizer_config.json does not say the barcode scheme (not saved by "
                    "BarcodeTokenizer); load the file with BarcodeTokenizer.from_tokenizer_file or from_spec"
                )
            scheme = "kmer"
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {tuple(FRAMINGS)}, got {framing!r}")
        stride = k if stride is None else stride
        if scheme == "kmer" and not (1 <= stride <= k):
            raise ValueError(f"k-mer stride must be in [1, k={k}], got {stride}")
        if max_bp < 1:
            raise ValueError(f"max_bp must be positive, got {max_bp}")
        for name in ("pad", "unk", "cls", "sep", "mask"):
            kwargs.setdefault(f"{name}_token", f"[{name.upper()}]")
        kwargs.setdefault("model_max_length", self._max_tokens(scheme, k, stride, max_bp, framing))
        super().__init__(tokenizer_file=tokenizer_file, tokenizer_object=tokenizer_object, **kwargs)
        if framing != "cls_sep":
            # Only a non-default framing rewrites the template: a BPE file keeps its own post-processor otherwise.
            _with_special_tokens(self._tokenizer, framing)
        self.framing = framing
        self.scheme = scheme
        self.k = k if scheme == "kmer" else 1
        self.stride = stride if scheme == "kmer" else 1
        self.max_bp = max_bp
        self.random_frame_offset = random_frame_offset
        # random_frame_offset is a training-time augmentation: it is never saved, so a saved folder (and
        # pipeline("feature-extraction")) always embeds in frame 0 and gives the same vectors on every call.
        self.init_kwargs.update(scheme=scheme, k=self.k, stride=self.stride, max_bp=max_bp, framing=framing)
        self.init_kwargs.pop("random_frame_offset", None)
        self._token_lengths: np.ndarray | None = None
        self._fast: tuple[str, Any] | bool | None = None

    @classmethod
    def convert_to_native_format(cls, trust_remote_code: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Load ``tokenizer.json`` exactly as saved.

        transformers otherwise rebuilds a custom class's backend from the vocabulary alone (as BPE), which would
        drop the k-mer pre-tokenizer and WordLevel model.
        """
        return dict(kwargs)

    @staticmethod
    def _max_tokens(scheme: str, k: int, stride: int, max_bp: int, framing: str) -> int:
        """Longest encoding of a ``max_bp`` barcode: its tokens plus the framing's special tokens."""
        special = sum(token is not None for token in FRAMINGS[framing])
        if scheme == "kmer":
            return (max_bp - k) // stride + 1 + special
        return max_bp + special

    # ----------------------------------------------------------------------------------------------- builders
    @classmethod
    def kmer(cls, k: int = 6, stride: int | None = None, **kwargs: Any) -> BarcodeTokenizer:
        """k-mer tokenizer; ``stride=None`` means non-overlapping (``stride=k``), ``stride=1`` overlapping.

        ``framing="none"`` (or ``"cls"``) gives the authors' BarcodeBERT/BarcodeMAE inputs, for converted models.
        """
        if not 1 <= k <= 8:
            raise ValueError(f"k must be in [1, 8] (4**k vocabulary), got {k}")
        stride = k if stride is None else stride
        if not 1 <= stride <= k:
            raise ValueError(f"k-mer stride must be in [1, k={k}], got {stride}")
        return cls(tokenizer_object=build_kmer_backend(k, stride), scheme="kmer", k=k, stride=stride, **kwargs)

    @classmethod
    def char(cls, **kwargs: Any) -> BarcodeTokenizer:
        """Character-level tokenizer (one token per base)."""
        return cls(tokenizer_object=build_char_backend(), scheme="char", **kwargs)

    @classmethod
    def from_tokenizer_file(cls, path: str, scheme: str = "bpe", **kwargs: Any) -> BarcodeTokenizer:
        """Wrap an existing ``tokenizer.json`` (e.g. a barcode BPE) with the barcode cleaning policy.

        The file must define ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (at any ids: the file's ids are kept) and every
        other token must be a run of IUPAC letters, so that a token's length is the number of bases it covers
        (byte-level tokens of A/C/G/T are those letters). A ``[CLS] $A [SEP]`` template is added if the file has
        no post-processor; a non-default ``framing`` replaces the file's.
        """
        backend = Tokenizer.from_file(str(path))
        missing = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{path}: tokenizer lacks special token(s) {missing}")
        if scheme == "bpe":
            _check_bpe_backend(backend, str(path))
        if backend.post_processor is None:
            _with_special_tokens(backend)
        return cls(tokenizer_object=backend, scheme=scheme, **kwargs)

    SPEC_GRAMMAR: ClassVar[str] = (
        "kmer<K> | kmer:k=<K>[,stride=<S>] | kmer:<K>[:<S>] | char | a tokenizer.json | a saved tokenizer folder"
    )

    @classmethod
    def parse_spec(cls, spec: str) -> dict[str, Any]:
        """The builder arguments a tokenizer spec names: ``{"scheme": "kmer", "k": 6, "stride": 1}``,
        ``{"scheme": "char"}`` or ``{"scheme": "file", "path": ...}``.

        One grammar for ``train.py --tokenizer``, the converter and the command line (:data:`SPEC_GRAMMAR`); a
        spec it cannot read is refused with the grammar, never guessed (``kmer4`` is 4-mers everywhere).
        """
        from pathlib import Path

        match = _KMER_SPEC.fullmatch(spec)
        if match:
            options: dict[str, Any] = {"scheme": "kmer", "k": int(match["k"] or match["k_colon"] or 6)}
            if match["stride_colon"]:
                options["stride"] = int(match["stride_colon"])
            for item in filter(None, (match["opts"] or "").split(",")):
                key, _, value = item.partition("=")
                if key not in ("k", "stride") or not value.isdigit():
                    raise ValueError(f"bad tokenizer spec {spec!r}: expected kmer:k=<int>,stride=<int>, got {item!r}")
                options[key] = int(value)
            return options
        if spec == "char":
            return {"scheme": "char"}
        if Path(spec).is_dir() or Path(spec).is_file():
            return {"scheme": "file", "path": spec}
        raise ValueError(f"tokenizer spec {spec!r} is not one of: {cls.SPEC_GRAMMAR} (no such file or folder)")

    @classmethod
    def from_spec(cls, spec: str) -> BarcodeTokenizer:
        """The tokenizer a spec names (see :meth:`parse_spec`): a k-mer or character tokenizer, a BPE
        ``tokenizer.json``, or a folder saved with ``save_pretrained``."""
        from pathlib import Path

        options = cls.parse_spec(spec)
        scheme = options.pop("scheme")
        if scheme == "kmer":
            return cls.kmer(**options)
        if scheme == "char":
            return cls.char()
        path = Path(options["path"])
        if not path.is_dir():
            return cls.from_tokenizer_file(str(path))
        config = path / "tokenizer_config.json"
        if config.is_file() and "scheme" in json.loads(config.read_text()):
            return cls.from_pretrained(str(path))  # saved by this class: scheme, k, framing ... are in the config
        if (path / "tokenizer.json").is_file():
            # A plain `tokenizers` / PreTrainedTokenizerFast folder (e.g. the BarcodeMAE authors' BPE): its config
            # says nothing of the scheme (from_pretrained refuses it), so its tokenizer.json is wrapped as a BPE.
            return cls.from_tokenizer_file(str(path / "tokenizer.json"))
        raise ValueError(f"{path}: neither a saved BarcodeTokenizer folder nor a folder with a tokenizer.json")

    # ---------------------------------------------------------------------------------------- reading frames
    @property
    def num_reading_frames(self) -> int:
        """How many leading bases a random reading frame may skip, plus one: ``k`` for multi-base k-mers, else 1."""
        return self.k

    def min_barcode_length(self, random_frames: bool) -> int:
        """Shortest barcode that yields a token in every reading frame that may be drawn.

        One k-mer needs k bases after the offset, and a random frame skips up to k-1: hence 2k-1 bp with random
        frames, k without (1 for character and BPE tokenizers). Pretraining loads with this minimum so that short
        records are rejected up front, in the cleaning report, instead of failing on whichever batch draws them.
        """
        return self.k + (self.num_reading_frames - 1 if random_frames else 0)

    def draw_frame_offsets(self, barcodes: list[str], rng: np.random.Generator) -> np.ndarray:
        """A random reading frame for each of these (cleaned) barcodes: the reading-frame augmentation.

        Offsets are uniform in ``[0, k)`` (one draw per barcode; nothing is drawn when there is a single frame),
        capped at ``len(barcode) - k`` so that a barcode shorter than ``min_barcode_length(True)`` still keeps one
        k-mer. Pretraining and fine-tuning both draw through here, so the augmentation has one definition.
        """
        lengths = np.fromiter(map(len, barcodes), dtype=np.int64, count=len(barcodes))
        if self.num_reading_frames == 1:
            return np.zeros(len(lengths), dtype=np.int64)
        offsets = rng.integers(0, self.num_reading_frames, size=len(lengths))
        return np.minimum(offsets, np.maximum(lengths - self.k, 0))

    def _frame_offsets(self, count: int, frame_offset: int | np.ndarray | list[int] | None) -> np.ndarray:
        """Reading-frame offsets for ``count`` barcodes: ``frame_offset`` is one offset for all or one per barcode.

        Random offsets use numpy's global generator (seeded by ``transformers.set_seed``), drawn for the whole
        batch at once; without ``random_frame_offset`` the frame is 0 (evaluation).
        """
        if frame_offset is not None:
            offsets = np.asarray(frame_offset, dtype=np.int64)
            if offsets.ndim == 0:
                offsets = np.full(count, int(offsets), dtype=np.int64)
            elif offsets.shape != (count,):
                raise ValueError(
                    f"frame_offset must be one offset or one per barcode ({count}), got {offsets.shape[0]}"
                )
            outside = np.flatnonzero((offsets < 0) | (offsets >= self.k))
            if outside.size:
                raise ValueError(f"frame_offset must be in [0, k={self.k}), got {int(offsets[outside[0]])}")
            return offsets
        if self.random_frame_offset and self.num_reading_frames > 1:
            return np.random.randint(0, self.num_reading_frames, size=count)
        return np.zeros(count, dtype=np.int64)

    def _prepare_one(self, text: str, index: int, offset: int) -> str:
        sequence = clean_barcode(text, record_id=f"input {index}", max_length=self.max_bp).sequence
        if self.scheme != "kmer":
            return sequence
        sequence = sequence[offset:]
        if len(sequence) < self.k:
            raise InvalidBarcodeError(
                f"input {index}",
                f"sequence of {len(sequence)} bp (after frame offset {offset}) is shorter than k={self.k}",
            )
        if self.stride == self.k:
            return sequence[: len(sequence) - len(sequence) % self.k]
        return overlapping_kmers(sequence, self.k, self.stride)

    def _prepare_any(self, text: Any, frame_offset: int | None) -> tuple[Any, np.ndarray]:
        """Prepare a barcode, a batch of barcodes or a batch of ``(barcode, barcode)`` pairs; return the offsets."""
        if isinstance(text, str):
            offsets = self._frame_offsets(1, frame_offset)
            return self._prepare_one(text, 0, int(offsets[0])), offsets
        if isinstance(text, (list, tuple)):
            offsets = self._frame_offsets(len(text), frame_offset)
            prepared = []
            for i, (item, offset) in enumerate(zip(text, offsets.tolist())):
                if isinstance(item, (list, tuple)):
                    if len(item) != 2:
                        raise ValueError(f"input {i}: a pair must hold two barcodes, got {len(item)} items")
                    prepared.append((self._prepare_one(item[0], i, offset), self._prepare_one(item[1], i, offset)))
                else:
                    prepared.append(self._prepare_one(item, i, offset))
            return prepared, offsets
        raise TypeError(f"barcodes must be a string or a list of strings, got {type(text).__name__}")

    def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any):  # type: ignore[override]
        frame_offset = kwargs.pop("frame_offset", None)
        if kwargs.get("is_split_into_words"):
            raise ValueError("BarcodeTokenizer takes whole barcodes, not pre-split words")
        want_offsets = kwargs.pop("return_offsets_mapping", False)
        if not isinstance(text, (str, list, tuple)):
            raise TypeError(f"barcodes must be a string or a list of strings, got {type(text).__name__}")
        batched = not isinstance(text, str)
        is_pair = text_pair is not None or (batched and any(isinstance(t, (tuple, list)) for t in text))
        if want_offsets and is_pair:
            raise ValueError("return_offsets_mapping is not supported for barcode pairs")
        if not is_pair and self._fast_path_applies(kwargs):
            items = [text] if isinstance(text, str) else text
            offsets = self._frame_offsets(len(items), frame_offset)
            encoding = self._encode_fast(items, offsets, batched, kwargs)
        else:
            text, offsets = self._prepare_any(text, frame_offset)
            if text_pair is not None:
                text_pair, _ = self._prepare_any(text_pair, frame_offset)
            encoding = super()._encode_plus(text, text_pair, **kwargs)
        if want_offsets:
            encoding["offset_mapping"] = self._offset_mapping(
                encoding["input_ids"], offsets, batched, kwargs.get("return_tensors")
            )
        return encoding

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """Token strings of one barcode (or pair); works on both encoding paths."""
        ids = self(text, pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]
        return self.convert_ids_to_tokens(ids)

    # ------------------------------------------------------------------------------------ vectorised path
    def _fast_path_applies(self, kwargs: dict[str, Any]) -> bool:
        """The vectorised path covers the everyday call; rarer options go through the ``tokenizers`` backend."""
        return (
            self.use_fast_path
            and self._fast_encoder() is not None
            and not kwargs.get("return_overflowing_tokens")
            and not kwargs.get("return_token_type_ids")
            and not kwargs.get("return_special_tokens_mask")
            and not kwargs.get("return_length")
            and not kwargs.get("stride")
            and self.truncation_side == "right"
        )

    def _fast_encoder(self) -> tuple[str, Any] | None:
        """How this vocabulary can be encoded without the backend's per-token bookkeeping (cached).

        ``kmer``: ids are ``first_id + base-4 value`` (checked against the vocabulary); ``char``: a byte lookup
        table; ``bpe``: the backend's ``encode_batch_fast`` without offsets, on a copy without the (idempotent
        on cleaned input) normalizer. ``None`` when the layout is not ours, e.g. a hand-written k-mer vocabulary
        or a post-processor other than the template of :attr:`framing`.
        """
        if self._fast is not None:
            return self._fast or None
        self._fast = False
        template = json.loads(self._tokenizer.to_str()).get("post_processor") or {}
        single = [next(iter(piece.values()))["id"] for piece in template.get("single", [])]
        lead, trail = FRAMINGS[self.framing]
        expected = [token for token in (lead, "A", trail) if token is not None]
        if template.get("type") != "TemplateProcessing" or single != expected:
            return None
        vocab = self.get_vocab()
        if self.scheme == "kmer":
            first_id = vocab.get("A" * self.k)
            kmers = ("".join(p) for p in itertools.product("ACGT", repeat=self.k))
            if first_id is not None and all(vocab.get(kmer) == first_id + i for i, kmer in enumerate(kmers)):
                self._fast = ("kmer", first_id)
        elif self.scheme == "char":
            self._fast = ("char", char_lookup(vocab, self.unk_token_id))
        else:
            encoder = Tokenizer.from_str(self._tokenizer.to_str())
            if encoder.normalizer is not None and encoder.normalizer.__getstate__() == dna_normalizer().__getstate__():
                encoder.normalizer = None
            encoder.post_processor = None
            encoder.no_truncation()
            encoder.no_padding()
            self._fast = ("bpe", encoder)
        return self._fast or None

    def _encode_fast(
        self, items: list[Any] | tuple[Any, ...], frame_offsets: np.ndarray, batched: bool, kwargs: dict[str, Any]
    ):
        """Clean, encode, truncate, frame and pad a batch with numpy; same ids as the backend path."""
        kind, payload = self._fast_encoder()  # type: ignore[misc]
        sequences = [
            clean_barcode(item, record_id=f"input {i}", max_length=self.max_bp).sequence for i, item in enumerate(items)
        ]
        if kind == "bpe":
            pieces = [encoding.ids for encoding in payload.encode_batch_fast(sequences, add_special_tokens=False)]
            counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
            ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=int(counts.sum()))
        else:
            flat, starts, lengths = concatenate(sequences)
            if kind == "char":
                ids, counts = payload[flat], lengths
            else:
                lengths = np.maximum(lengths - frame_offsets, 0)
                short = np.flatnonzero(lengths < self.k)
                if short.size:
                    i = int(short[0])
                    raise InvalidBarcodeError(
                        f"input {i}",
                        f"sequence of {lengths[i]} bp (after frame offset {frame_offsets[i]}) "
                        f"is shorter than k={self.k}",
                    )
                ids, counts = kmer_ids(
                    flat, starts + frame_offsets, lengths, self.k, self.stride, payload, self.unk_token_id
                )
        return self._frame_fast(ids, counts, batched, kwargs)

    def _frame_fast(self, ids: np.ndarray, counts: np.ndarray, batched: bool, kwargs: dict[str, Any]) -> BatchEncoding:
        """Apply HF truncation/padding semantics to flat ids and build the ``BatchEncoding``."""
        special = bool(kwargs.get("add_special_tokens", True))
        lead, trail = FRAMINGS[self.framing]
        cls_id = self.cls_token_id if special and lead is not None else None
        sep_id = self.sep_token_id if special and trail is not None else None
        added = (cls_id is not None) + (sep_id is not None)
        max_length = kwargs.get("max_length")
        truncate = (
            kwargs.get("truncation_strategy", TruncationStrategy.DO_NOT_TRUNCATE) != TruncationStrategy.DO_NOT_TRUNCATE
        )
        max_content = max_length - added if truncate and max_length is not None else None
        padding = kwargs.get("padding_strategy", PaddingStrategy.DO_NOT_PAD)
        kept = counts if max_content is None else np.minimum(counts, max(max_content, 0))
        longest = int(kept.max(initial=0)) + added
        pad_to = longest if padding != PaddingStrategy.MAX_LENGTH or max_length is None else max(longest, max_length)
        multiple = kwargs.get("pad_to_multiple_of")
        if multiple and padding != PaddingStrategy.DO_NOT_PAD:
            pad_to = -(-pad_to // multiple) * multiple
        matrix, mask, framed = frame_batch(
            ids,
            counts,
            cls_id=cls_id,
            sep_id=sep_id,
            pad_id=self.pad_token_id,
            max_content=max_content,
            pad_to=pad_to,
            left_padding=(kwargs.get("padding_side") or self.padding_side) == "left",
        )
        return_tensors = kwargs.get("return_tensors")
        data: dict[str, Any] = {"input_ids": matrix}
        if kwargs.get("return_attention_mask") is not False:
            data["attention_mask"] = mask
        ragged = padding == PaddingStrategy.DO_NOT_PAD and bool((framed != framed.max(initial=0)).any())
        if return_tensors is None or ragged:
            if padding == PaddingStrategy.DO_NOT_PAD:
                data = {
                    key: [row[:n] for row, n in zip(value.tolist(), framed.tolist())] for key, value in data.items()
                }
            else:
                data = {key: value.tolist() for key, value in data.items()}
            if not batched and return_tensors is None:
                data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, tensor_type=return_tensors)

    def _offset_mapping(self, input_ids: Any, frame_offsets: np.ndarray, batched: bool, return_tensors: Any) -> Any:
        """(start, end) base of every token in the cleaned barcode, ``(0, 0)`` for special tokens (HF convention).

        The backend's own offsets refer to the laid-out string (space-separated windows, frame-shifted), which
        means nothing to a user, so they are recomputed from :meth:`nucleotide_spans` (one call per row: rows
        may be ragged when unpadded).
        """
        rows = list(input_ids) if (batched or return_tensors is not None) else [input_ids]
        mapped = []
        for row, shift in zip(rows, frame_offsets.tolist()):
            starts, ends = self.nucleotide_spans(np.asarray(row))
            special = starts < 0
            mapped.append(np.stack([np.where(special, 0, starts + shift), np.where(special, 0, ends + shift)], axis=-1))
        if return_tensors == "np":
            return np.stack(mapped)
        if return_tensors is not None:
            import torch  # reached only when the caller asked for torch tensors, so torch is installed

            return torch.as_tensor(np.stack(mapped))
        as_lists = [[tuple(pair) for pair in m.tolist()] for m in mapped]
        return as_lists if batched else as_lists[0]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Rebuild the nucleotide string; overlapping k-mers contribute ``stride`` new bases each.

        ``[UNK]`` stood for real bases (a k-mer holding an ambiguity code, an out-of-vocabulary letter), so it
        decodes to ``N`` over its width and the decoded length stays right; the other special tokens are dropped.
        """
        unk_bases = "N" * self.k
        tokens = [
            unk_bases if t == self.unk_token else t
            for t in tokens
            if t == self.unk_token or t not in self.all_special_tokens
        ]
        if not tokens:
            return ""
        if self.scheme == "kmer" and self.stride < self.k:
            return tokens[0] + "".join(t[-self.stride :] for t in tokens[1:])
        return "".join(tokens)

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        """Decode to bases; special tokens never appear in the output (see :meth:`convert_tokens_to_string`)."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(list(token_ids)))

    # ------------------------------------------------------------------------------- nucleotide coordinates
    def token_lengths(self) -> np.ndarray:
        """Bases each vocabulary id advances the read by, indexed by token id.

        0 for ``[PAD] [CLS] [SEP] [MASK]``; ``[UNK]`` stands for real bases (a k-mer with an ambiguity code, or
        one out-of-vocabulary letter in BPE), so it advances ``stride`` (k-mers) or 1 base.
        """
        if self._token_lengths is None:
            lengths = np.zeros(len(self), dtype=np.int64)
            for token, index in self.get_vocab().items():
                if token == self.unk_token or token not in self.all_special_tokens:
                    lengths[index] = (
                        self.stride if self.scheme == "kmer" else (1 if token == self.unk_token else len(token))
                    )
            self._token_lengths = lengths
        return self._token_lengths

    def nucleotide_spans(self, input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end base (half-open) each token covers, ``-1`` for special and pad tokens.

        Vectorised over a ``(batch, length)`` array; masking strategies work in these coordinates so they are
        correct for overlapping and non-overlapping k-mers and for BPE alike. Coordinates start at the first
        base the tokenizer saw (i.e. after any reading-frame offset).
        """
        ids = np.asarray(input_ids)
        advance = self.token_lengths()[ids]
        starts = np.cumsum(advance, axis=-1) - advance
        width = np.where(advance > 0, self.k, 0) if self.scheme == "kmer" else advance
        ends = starts + width
        special = advance == 0
        return np.where(special, -1, starts), np.where(special, -1, ends)

    def model_config_kwargs(self) -> dict[str, Any]:
        """The :class:`BarcodeMAEConfig` fields fixed by this tokenizer.

        Training builds its config as ``BarcodeMAEConfig(**tokenizer.model_config_kwargs(), **architecture)`` so
        the vocabulary, special ids, the longest possible input and the tokenizer description can never drift
        from the tokenizer the model was trained with.
        """
        described = self.describe()
        return {
            "vocab_size": described["vocab_size"],
            "tokenizer_scheme": described["scheme"],
            "kmer_size": described["k"],
            "kmer_stride": described["stride"],
            "max_bp": described["max_bp"],
            "pad_token_id": self.pad_token_id,
            "unk_token_id": self.unk_token_id,
            "cls_token_id": self.cls_token_id,
            "sep_token_id": self.sep_token_id,
            "mask_token_id": self.mask_token_id,
            "max_position_embeddings": int(self.model_max_length),
        }

    def describe(self) -> dict[str, Any]:
        """The one description of this tokenizer: what a model config records (:meth:`model_config_kwargs`), what
        logs and training summaries print, and what :meth:`summary` puts into words."""
        return {
            "scheme": self.scheme,
            "k": self.k,
            "stride": self.stride,
            "max_bp": self.max_bp,
            "vocab_size": len(self),
            "framing": self.framing,
        }

    def summary(self) -> str:
        """:meth:`describe` in words, for model cards: e.g. ``"6-mers, non-overlapping, vocabulary 4,101"``."""
        described = self.describe()
        vocabulary = f"vocabulary {described['vocab_size']:,}"
        if described["scheme"] == "kmer":
            k, stride = described["k"], described["stride"]
            kind = "non-overlapping" if stride == k else f"overlapping (stride {stride})"
            return f"{k}-mers, {kind}, {vocabulary}"
        if described["scheme"] == "char":
            return f"one token per base, {vocabulary}"
        return f"barcode-trained BPE, {vocabulary}"


def _check_bpe_backend(backend: Tokenizer, source: str) -> None:
    """Reject BPE files whose tokens are not base runs: their nucleotide coordinates would be wrong."""
    model = json.loads(backend.to_str())["model"]
    if model.get("fuse_unk"):
        raise ValueError(
            f"{source}: fuse_unk=True makes [UNK] cover an unknown number of bases; re-save with fuse_unk=False"
        )
    bad = [t for t in backend.get_vocab() if t not in SPECIAL_TOKENS and NOT_IUPAC_TOKEN.search(t)]
    if bad:
        raise ValueError(
            f"{source}: {len(bad)} vocabulary token(s) are not runs of IUPAC letters (e.g. {sorted(bad)[:5]!r}); "
            "a barcode BPE vocabulary must contain only nucleotide letters besides the special tokens"
        )
