"""Bios occupation prediction: data (Bias in Bios, the offline BUG stand-in), cached encodings, the steering
methods compared, the evaluation protocol and its report.

A facade: the text data live in :mod:`steerfair.datasets.bios`, the encoders in :mod:`steerfair.llm.encode`,
the steering methods in :mod:`steerfair.representations` and :mod:`steerfair.baselines`, and the protocol, its
method registry, report and end-to-end run in :mod:`steerfair.evaluation` (``bios_*`` modules).

``steerfair bios --model minilm --data bug --out results/bios`` runs it end to end.
"""

from ..baselines import INLP
from ..datasets.bios import TextDataset, load_bios, load_bug, load_text_data, stratified_split
from ..evaluation.bios_methods import METHODS, make_method
from ..evaluation.bios_protocol import ProtocolConfig, excess_rms, noise_floor_rms, run_protocol
from ..evaluation.bios_report import markdown, plot_gaps, plot_tradeoff
from ..evaluation.bios_run import encoded_features, run_bios
from ..llm.encode import encode, encode_cached
from ..representations import IdealTemplateSteering

__all__ = [
    "INLP",
    "METHODS",
    "IdealTemplateSteering",
    "ProtocolConfig",
    "TextDataset",
    "encode",
    "encode_cached",
    "encoded_features",
    "excess_rms",
    "load_bios",
    "load_bug",
    "load_text_data",
    "make_method",
    "markdown",
    "noise_floor_rms",
    "plot_gaps",
    "plot_tradeoff",
    "run_bios",
    "run_protocol",
    "stratified_split",
]
