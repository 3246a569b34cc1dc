"""Bios occupation-prediction protocol (same as ``steerfair bios``).

    python recipes/bios.py --model minilm --data bug --out results/bios/minilm
    python recipes/bios.py --model smollm2 --data bug --max-length 64 --out results/bios/smollm2
    python recipes/bios.py --model minilm --data bug --max-per-class 0 --out results/bios_full/minilm   # all of BUG

Writes OUT/results.json, OUT/results.md (table) and OUT/gaps.png (per-occupation gap vs share of women).
"""

import argparse
import sys

from steerfair.evaluation.arguments import parse_checked
from steerfair.evaluation.bios_run import add_arguments, check_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parse_checked(parser, None, check_arguments)))  # bad arguments: usage errors before any work
