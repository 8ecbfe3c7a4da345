"""Evaluation suite: closed-world species, open-world genus 1-NN, BIN reconstruction."""
