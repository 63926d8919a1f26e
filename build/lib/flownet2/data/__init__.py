"""Datasets, flow file formats, frame sources, the .bin batches and the manifest."""
