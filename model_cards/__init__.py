"""Model card templates rendered by ``barcodemae export``, shipped as package data."""
