"""Privacy trade-off: fairness gap and accuracy against epsilon, steering from randomised sensitive attributes.

    python recipes/privacy_tradeoff.py --out results/privacy                  # Adult / sex, 5 seeds
    python recipes/privacy_tradeoff.py --features enc.npz --out results/privacy_bug   # arrays X, y, groups

Writes privacy_tradeoff.{json,md,png}; the protocol is in steerfair/evaluation/privacy_tradeoff.py.
"""

import sys

from steerfair.evaluation.privacy_tradeoff import main

if __name__ == "__main__":
    sys.exit(main())
