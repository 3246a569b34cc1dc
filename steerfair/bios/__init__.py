"""Bios occupation prediction: data (Bias in Bios, the offline BUG stand-in), cached encodings, the steering
methods compared, the evaluation protocol and its report.

``steerfair bios --model minilm --data bug --out results/bios`` runs it end to end (see :mod:`.run`).
"""

from .data import TextDataset, load_bios, load_bug, load_text_data, stratified_split
from .encode import encode, encode_cached
from .methods import INLP, METHODS, IdealTemplateSteering, make_method
from .protocol import ProtocolConfig, noise_floor_rms, run_protocol
from .report import markdown, plot_gaps, plot_tradeoff
from .run import encoded_features, run_bios

__all__ = [
    "INLP",
    "METHODS",
    "IdealTemplateSteering",
    "ProtocolConfig",
    "TextDataset",
    "encode",
    "encode_cached",
    "encoded_features",
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
