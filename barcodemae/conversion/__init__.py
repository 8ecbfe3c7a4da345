"""Converting the BarcodeMAE and BarcodeBERT authors' checkpoints into BarcodeMAE model folders
(``barcodemae-convert``).

* :mod:`~barcodemae.conversion.convert`: :func:`~barcodemae.conversion.convert.convert_checkpoint` and the command;
* :mod:`~barcodemae.conversion.checkpoint_keys`: reading a checkpoint and renaming its keys into our layout;
* :mod:`~barcodemae.conversion.checkpoint_config`: our config from the checkpoint's shapes and the original configs;
* :mod:`~barcodemae.conversion.kmer_vocabulary`: the authors' k-mer vocabulary re-indexed onto our tokenizer's ids.

Why not in ``modeling_barcodemae/``: that folder is what saved model folders carry as remote code, and it imports
nothing of the package; the converter needs the tokenizer and the package's file helpers.
"""
