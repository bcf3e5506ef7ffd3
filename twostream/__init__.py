"""twostream: fit, evaluate and fuse the spatial and temporal streams on flowprep shards.

The command line is `twostream` (twostream.cli, docs/cli.md); a training loop of your own uses
twostream.api (datasets, the test protocol, score files and fusion; docs/api.md). The import name
is `twostream`, not `train`, so that a user's train.py does not hide the package.
"""
