"""flowprep: decode a video dataset, compute bidirectional optical flow, write HDF5 shards."""
__version__ = "0.1.0"
