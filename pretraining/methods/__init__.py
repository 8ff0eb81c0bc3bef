"""Self-supervised pretraining methods over the shared encoder, one module each (registry: ``methods``)."""
