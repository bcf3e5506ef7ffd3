"""flowprep's on-disk contract, the one part of flowprep that twostream reads: the shards (shards,
codecs, quantize, limits), the manifest CSV (manifest), and the extraction folder (folder: the
store; folder_config: config.json; folder_index: index.json; names: the names it holds). What
every run of a command needs besides (atomic files, signals, the lock) is runkit's."""
