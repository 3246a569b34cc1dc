"""Evaluation of steerfair against baselines: studies, protocols, reports and result writing.

Nothing in the library core imports this package; the recipes (``recipes/*.py``) and the command line
(``steerfair demo``, ``steerfair bios``, ``steerfair generation-bias``) run it.

=========================  ============================================================================
module                     what it holds
=========================  ============================================================================
``case_study``             the paper's Gaussian case study (analytic rates, ``steerfair demo --synthetic``)
``tabular_benchmark``      steerfair vs fairness baselines on Adult, COMPAS, German, Law (LR, GBM, MLP)
``tabular_methods``        its methods (steering, baselines, ThresholdOptimizer, ...) and downstream models
``tabular_report``         its verdict, markdown tables and Pareto plot
``privacy_tradeoff``       fairness and accuracy against epsilon, steering from randomised attributes
``privacy_data``           the trade-off's data (Adult, arrays from a file, BUG encodings) and steerers
``bios_protocol``          the Bios occupation protocol (``ProtocolConfig``, ``run_protocol``)
``bios_methods``           the representation-steering methods it compares (``METHODS``, ``make_method``)
``bios_classifier``        the protocol's multinomial logistic regression (``SoftmaxRegression``)
``bios_report``            its markdown table and plots
``bios_run``               end to end: load, encode (cached), run, write (``steerfair bios``)
``output``                 writing ``<stem>.json``, ``<stem>.md`` and ``<stem>.png``
``plots``                  shared plot helpers (a legend below the axes that fits the figure)
``generation_bias``        the generation-bias harness: pronoun log-odds, occupation TV, perplexity ratio, KL
``generation_methods``     steering methods for generation (mean difference, LEACE, MiMiC, steerfair variants)
``readout_methods``        the pronoun readout subspace (unembedding contrasts) and its erasure map
``generation_run``         end to end: validate, load, fit, sweep, write (``steerfair generation-bias``)
=========================  ============================================================================
"""
