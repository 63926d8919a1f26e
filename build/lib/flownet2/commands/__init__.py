"""The command-line programs, one module each: argparse over the library (each module's `cli` is its console script)."""
