"""Stand-in for Ascend's ais_bench package (tests only; put tests/standins on PYTHONPATH)."""
