"""Stand-in for ais_bench's Python API package `ais_bench.infer` (tests only)."""
