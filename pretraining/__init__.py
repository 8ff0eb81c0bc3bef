"""Pretraining: ECG simulators, pretraining corpora and the masked-autoencoder Transformer."""
