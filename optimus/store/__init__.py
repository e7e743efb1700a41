"""Model directories on disk.

* `storage`: file primitives: atomic writes, JSONL, the run lock, stop requests;
* `checkpoint`: atomic model directories and `run_config`, the one rule for which config runs;
* `runs`: the app's run discovery and control (list models, start/stop/continue a trainer).

Readers never write; only the holder of a directory's run lock changes it.
"""
