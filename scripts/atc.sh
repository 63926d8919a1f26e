#!/usr/bin/env bash
# The script lives in the package (flownet2/commands/atc.sh), so that `pip install .` ships it too
# (as the `flownet2-atc` command); this path keeps working from a checkout.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../flownet2/commands/atc.sh" "$@"
