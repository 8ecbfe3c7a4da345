""":class:`BarcodeTokenizer` registered with ``AutoTokenizer``, as the package hands it out.

Why a module of its own: the registration needs transformers and the model package (it is keyed by the BarcodeMAE
config class), and :mod:`barcodemae.tokenization` must stay light, because the sequence-cleaning policy under it is
imported by commands that never tokenize (``identify`` with a k-mer index, ``qc`` without a model). The package's
``BarcodeTokenizer`` comes from here, so its first use registers it: a saved tokenizer folder then loads with
``AutoTokenizer.from_pretrained`` as our class, without ``trust_remote_code``. Not a saved code file:
:mod:`.tokenization_barcodemae` may import only torch and transformers.
"""

from __future__ import annotations

from transformers import AutoTokenizer

from modeling_barcodemae import BarcodeMAEConfig

from .tokenization_barcodemae import BarcodeTokenizer

AutoTokenizer.register(BarcodeMAEConfig, fast_tokenizer_class=BarcodeTokenizer, exist_ok=True)
BarcodeTokenizer.register_for_auto_class("AutoTokenizer")  # saved folders: tokenizer_config.json's auto_map

__all__ = ["BarcodeTokenizer"]
