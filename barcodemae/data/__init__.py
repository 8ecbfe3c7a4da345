"""Readers for BIOSCAN-5M metadata CSV, FASTA and BOLD TSV, all mapped to one record schema."""
