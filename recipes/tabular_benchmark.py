"""Tabular benchmark: steerfair vs reweighing, CorrelationRemover, mean matching, MiMiC-style OT and LEACE.

    python recipes/tabular_benchmark.py --out results/tabular            # 5 tasks x 2 models x 5 seeds
    python recipes/tabular_benchmark.py --tasks adult/sex --models logistic

Writes tabular_benchmark.{json,md,png}; the protocol is in steerfair/evaluation/tabular_benchmark.py.
"""

import sys

from steerfair.evaluation.tabular_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
