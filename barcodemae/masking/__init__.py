"""Masking strategies (random, span, GeneMask, Global, curricula) and the pretraining data collator."""
