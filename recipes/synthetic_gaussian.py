"""The paper's Gaussian case study (section "Case Study on Gaussian Distributions"), reproduced.

    python recipes/synthetic_gaussian.py --out results/synthetic

Writes ``synthetic_gaussian.json`` and ``synthetic_gaussian.md``; the settings, interventions and
metrics are documented in :mod:`steerfair.evaluation.case_study`.
"""

from steerfair.evaluation.case_study import main

if __name__ == "__main__":
    main()
