"""train: fit, evaluate and fuse the spatial and temporal streams on flowprep shards."""
