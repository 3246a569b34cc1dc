"""Tabular benchmark: steerfair (ideal target, shared target, shared target at a picked strength) against
ThresholdOptimizer, ExponentiatedGradient, reweighing, CorrelationRemover, mean matching, MiMiC-style OT and LEACE,
for logistic regression, gradient boosting and a small MLP.

    python recipes/tabular_benchmark.py --out results/tabular             # 5 tasks x 3 models x every method x 5 seeds
    python recipes/tabular_benchmark.py --out results/t --tasks adult/sex --models lr mlp --seeds 2 \\
        --methods raw steerfair "steerfair (shared)" threshold_optimizer

Writes tabular_benchmark.{json,md,png} (results, verdict + tables, Pareto plot); refuses to replace earlier results
without --overwrite. The protocol is in steerfair/evaluation/tabular_benchmark.py.
"""

import sys

from steerfair.evaluation.tabular_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
