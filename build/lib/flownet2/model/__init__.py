"""The network, its layers, checkpoints, export and the weights' provenance."""
