"""Inference bridge to specialist models on Triton and local torch (built with the inference bridge)."""
