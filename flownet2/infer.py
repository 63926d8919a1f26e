"""`python -m flownet2.infer`: the ais_bench-compatible runner (the library is flownet2/runtime/infer.py)."""
from .cli import run_main
from .runtime.infer import main

if __name__ == "__main__":
    run_main(main)
