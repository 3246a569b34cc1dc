"""The Bios occupation-prediction protocol: steer representations, train a profession classifier, measure
per-profession TPR gaps.

For every seed: a split stratified by (occupation, gender) cell (65 / 10 / 25 by default, as INLP's Bios
split); every method is fitted on the training representations with gold gender; the training rows are
moved (with their gold occupation where the method uses it), the dev/test rows with gold gender and,
separately, with the gender predicted by a logistic-regression probe fitted on the raw training
representations (the occupation is never used at test time). A multinomial logistic regression is trained
on the (steered) training rows and evaluated on the (steered) test rows. Reported per method: accuracy,
per-occupation TPR gap, its RMS, the Pearson correlation of the gaps with the share of women, the accuracy of
a gender probe retrained on the steered representations, and the RMS that sampling noise alone would give.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..datasets.bios import stratified_split
from ..metrics import gap_share_correlation, group_share_per_class, tpr_gaps_per_class
from ..validation import as_unit_weight
from .bios_methods import METHODS, make_method

__all__ = ["ProtocolConfig", "excess_rms", "noise_floor_rms", "run_protocol", "summarise"]


@dataclass(frozen=True)
class ProtocolConfig:
    """Options of :func:`run_protocol`.

    Attributes:
        seeds: number of random splits (seed ``s`` uses split seed ``s``).
        methods: methods to compare (:data:`steerfair.evaluation.bios_methods.METHODS`).
        fractions: train / dev / test fractions of each (occupation, gender) cell.
        criterion, intervention, shrinkage, rank, test_mode, frame, share_covariance, target: options of the
            steerfair method (:class:`~steerfair.representations.IdealTemplateSteering`); ``target="shared"`` makes
            ``"steerfair"`` the shared target (``"steerfair_shared"`` always is).
        priors: train the classifier with the ideal's sample weights (the class-prior part of the ideal).
        train_mode: ``"label"`` moves training rows by their (gender, occupation) cell map (their law becomes
            the ideal exactly); ``"test"`` moves them like test rows (``test_mode``, occupation unused).
        oracle_labels: a *diagnostic*, not a method: move dev/test rows by their gold occupation's cell map
            (the occupation is unknown in deployment). With ``train_mode="label"`` this shows what the fitted
            maps achieve when the test-time occupation problem is removed.
        group_a, group_b: the gap is ``TPR_a - TPR_b`` (``sign="signed"``) or its absolute value.
        exclude: occupations left out of the gap statistics (RLACE skips ``"model"``).
        share_split: which rows give the share of women per occupation (``"train"`` as in MiMiC;
            ``"all"`` as in INLP's notebook).
        C, max_iter: the profession classifier's inverse regularisation (scikit-learn's convention, on
            standardised features) and L-BFGS iteration cap; see
            :class:`~steerfair.evaluation.bios_classifier.SoftmaxRegression`.
    """

    seeds: int = 5
    methods: tuple[str, ...] = ("none", "steerfair", "mean_matching", "mimic", "leace")
    fractions: tuple[float, float, float] = (0.65, 0.1, 0.25)
    criterion: str = "equal_opportunity"
    intervention: str = "all"
    shrinkage: Any = "oas"
    rank: int | None = 128
    test_mode: str = "posterior"
    frame: str = "template"
    share_covariance: float = 0.0
    target: str = "ideal"
    priors: bool = True
    train_mode: str = "test"
    oracle_labels: bool = False
    group_a: str = "female"
    group_b: str = "male"
    sign: str = "signed"
    exclude: tuple[str, ...] = ()
    share_split: str = "train"
    C: float = 0.01
    max_iter: int = 300
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer; got {self.seeds!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {self.max_iter!r}")
        fr = tuple(self.fractions)
        if len(fr) != 3 or not all(isinstance(f, (int, float)) and f > 0 for f in fr) or abs(sum(fr) - 1) > 1e-9:
            raise ValueError(f"fractions must be three positive train / dev / test fractions summing to 1; got {fr}")
        # labels are compared as text (run_protocol reads occupations and genders as str): so are these
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        object.__setattr__(self, "exclude", tuple(str(c) for c in exclude))
        object.__setattr__(self, "group_a", str(self.group_a))
        object.__setattr__(self, "group_b", str(self.group_b))
        if self.group_a == self.group_b:
            raise ValueError(f"group_a and group_b must differ; both are {self.group_a!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {unknown}; use some of {METHODS}")
        if self.train_mode not in ("label", "test"):
            raise ValueError(f"train_mode must be 'label' or 'test'; got {self.train_mode!r}")
        if self.share_split not in ("train", "all"):
            raise ValueError(f"share_split must be 'train' or 'all'; got {self.share_split!r}")
        as_unit_weight(self.share_covariance, "share_covariance")
        if self.target not in ("ideal", "shared"):
            raise ValueError(f"target must be 'ideal' or 'shared'; got {self.target!r}")
        if self.sign not in ("signed", "absolute"):
            raise ValueError(f"sign must be 'signed' or 'absolute'; got {self.sign!r}")


_STEER_OPTIONS = (
    "criterion", "intervention", "shrinkage", "rank", "test_mode", "frame", "share_covariance", "target",
)  # fmt: skip


def _classifier(C: float, max_iter: int) -> Any:
    """The profession classifier."""
    from .bios_classifier import SoftmaxRegression  # lazy: torch only when a protocol runs (`steerfair bios --help`)

    return SoftmaxRegression(C=C, max_iter=max_iter)


def noise_floor_rms(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, cfg: ProtocolConfig) -> float:
    """The RMS TPR gap expected from sampling noise alone: ``sqrt(mean_c t_c (1 - t_c) (1/n_ac + 1/n_bc))`` with
    ``t_c`` the pooled recall of class ``c`` (the gap's standard error if both groups had the same TPR).

    Args:
        y_true: True occupations.
        y_pred: Predicted occupations.
        groups: Gender of every row.
        cfg: Gives the two groups compared and the occupations excluded.

    Returns:
        float: The RMS, NaN if no occupation has rows of both groups.
    """
    correct = y_true == y_pred
    terms = []
    for c in np.unique(y_true):
        if c in cfg.exclude:
            continue
        na = int(np.sum((y_true == c) & (groups == cfg.group_a)))
        nb = int(np.sum((y_true == c) & (groups == cfg.group_b)))
        if na and nb:  # the pooled recall of the two compared groups (rows of other groups are not in the gap)
            rows = (y_true == c) & ((groups == cfg.group_a) | (groups == cfg.group_b))
            t = float(correct[rows].mean())
            terms.append(t * (1 - t) * (1 / na + 1 / nb))
    return float(math.sqrt(np.mean(terms))) if terms else math.nan


def excess_rms(rms: float, floor: float) -> float:
    """The RMS gap left once the sampling noise is taken out: ``sqrt(max(rms^2 - floor^2, 0))``.

    A measured RMS squared is about the true RMS squared plus the noise floor squared (independent noise per
    occupation), so this estimates the true RMS gap; it is 0 when the measured gap is within the noise.

    Args:
        rms: The measured RMS TPR gap.
        floor: The noise floor (:func:`noise_floor_rms`).

    Returns:
        float: The excess RMS (NaN if either input is NaN).
    """
    return float(math.sqrt(max(rms * rms - floor * floor, 0.0))) if math.isfinite(rms + floor) else math.nan


def _evaluate(y: np.ndarray, pred: np.ndarray, g: np.ndarray, share: dict[Any, float], cfg: ProtocolConfig) -> dict:
    """Accuracy, per-occupation TPR gaps, their RMS, their correlation with ``share`` and the noise floor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gaps = tpr_gaps_per_class(y, pred, g, group_a=cfg.group_a, group_b=cfg.group_b, exclude=list(cfg.exclude))
        vals = np.array([v for v in gaps.values() if np.isfinite(v)])
        signed = {c: v for c, v in gaps.items() if np.isfinite(v)}
        out_gaps = {c: (abs(v) if cfg.sign == "absolute" else v) for c, v in signed.items()}
        try:  # the gaps the run reports: signed, or absolute under sign="absolute" (it correlated the signed ones)
            corr = gap_share_correlation(out_gaps, share)
        except ValueError:
            corr = math.nan
    missing = sorted(str(c) for c, v in gaps.items() if not np.isfinite(v))
    if missing:  # a cell without rows in this split: the occupation cannot enter the RMS
        warnings.warn(
            f"occupation(s) {missing} have no {cfg.group_a!r} or no {cfg.group_b!r} row in this split and are left "
            "out of the TPR-gap RMS and the noise floor (too few rows per cell to split: drop them or add rows)",
            UserWarning,
            stacklevel=2,
        )
    rms, floor = float(np.sqrt(np.mean(vals**2))), noise_floor_rms(y, pred, g, cfg)
    return {
        "accuracy": float(np.mean(y == pred)),
        "rms_tpr_gap": rms,
        "excess_rms_tpr_gap": excess_rms(rms, floor),
        "gap_share_corr": float(corr),
        "noise_floor_rms": floor,
        "tpr_gaps": {str(c): float(v) for c, v in out_gaps.items()},
    }


def _gender_probe(Xtr: np.ndarray, gtr: np.ndarray) -> Any:
    """A gender probe fitted on ``(Xtr, gtr)``."""
    from .bios_classifier import SoftmaxRegression  # lazy: torch only when a protocol runs (`steerfair bios --help`)

    return SoftmaxRegression(C=1.0).fit(Xtr, gtr)


def run_protocol(
    X: np.ndarray,
    y: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    config: ProtocolConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol on representations ``X`` (one row per text) with occupations ``y`` and genders ``groups``.

    Returns a JSON-serialisable dict: ``config``, ``per_seed`` (every method's metrics on dev and test, with
    gold and predicted gender), ``methods`` (test metrics with gold gender, mean over seeds, plus ``*_std``),
    ``methods_predicted_gender`` (the same with the probe's gender), ``seconds``.

    Args:
        X: Representations ``(n, d)``.
        y: Occupation of every row.
        groups: Gender of every row.
        config: Options (default :class:`ProtocolConfig`).
        progress: Show a progress bar.
        log: Called with one line per fitted method.

    Returns:
        dict: The results described above.

    Raises:
        ValueError: For mismatched shapes, non-finite values, or groups lacking ``group_a`` / ``group_b``.
    """
    from tqdm.auto import tqdm

    cfg = config or ProtocolConfig()
    X = np.asarray(X)
    y_arr, g_arr = np.asarray(y).astype(str), np.asarray(groups).astype(str)
    if X.ndim != 2 or X.shape[0] != len(y_arr) or len(y_arr) != len(g_arr):
        raise ValueError(f"X must be (n, d) with one occupation and one gender per row; got {X.shape}, "
                         f"{len(y_arr)}, {len(g_arr)}")  # fmt: skip
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    present = set(g_arr.tolist())
    if {cfg.group_a, cfg.group_b} - present:
        raise ValueError(f"groups must contain {cfg.group_a!r} and {cfg.group_b!r}; got {sorted(present)}")
    t0 = time.perf_counter()
    per_seed: list[dict[str, Any]] = []
    steer_opts = {k: getattr(cfg, k) for k in _STEER_OPTIONS}
    bar = tqdm(total=cfg.seeds * len(cfg.methods), desc="bios protocol", unit="fit", disable=not progress)
    for seed in range(cfg.seeds):
        tr, dv, te = stratified_split(y_arr, g_arr, cfg.fractions, seed=seed)
        Xtr = X[tr].astype(np.float64)
        share_rows = tr if cfg.share_split == "train" else np.arange(len(y_arr))
        share = group_share_per_class(y_arr[share_rows], g_arr[share_rows], cfg.group_a)
        probe = _gender_probe(Xtr, g_arr[tr])
        pred_g = {"dev": probe.predict(X[dv]), "test": probe.predict(X[te])}
        record: dict[str, Any] = {
            "seed": seed,
            "gender_probe_raw_test_accuracy": float(np.mean(pred_g["test"] == g_arr[te])),
            "share": {str(c): float(v) for c, v in share.items()},
        }
        for name in cfg.methods:
            t1 = time.perf_counter()
            method = make_method(name, **steer_opts, random_state=seed)
            method.fit(Xtr, y_arr[tr], g_arr[tr])
            labelled = cfg.train_mode == "label"
            Ztr = method.transform(Xtr, g_arr[tr], y=y_arr[tr] if labelled else None)
            weights = None
            if name == "steerfair" and cfg.priors:
                weights = method.sample_weight(y_arr[tr], g_arr[tr])
            clf = _classifier(cfg.C, cfg.max_iter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter
                clf.fit(Ztr, y_arr[tr], sample_weight=weights)
            res: dict[str, Any] = {}
            for split, rows in (("dev", dv), ("test", te)):
                for which, gg in (("gold", g_arr[rows]), ("predicted", pred_g[split])):
                    Z = method.transform(X[rows].astype(np.float64), gg, y=y_arr[rows] if cfg.oracle_labels else None)
                    res[f"{split}_{which}"] = _evaluate(y_arr[rows], clf.predict(Z), g_arr[rows], share, cfg)
                    if split == "test" and which == "gold":
                        gprobe = _gender_probe(Ztr, g_arr[tr])
                        res[f"{split}_{which}"]["gender_probe_accuracy"] = float(
                            np.mean(gprobe.predict(Z) == g_arr[rows])
                        )
            res["seconds"] = time.perf_counter() - t1
            record[name] = res
            if log is not None:
                r = res["test_gold"]
                log(f"seed {seed} {name:14s} acc {r['accuracy']:.4f} rms {r['rms_tpr_gap']:.4f} "
                    f"probe {r['gender_probe_accuracy']:.3f} ({res['seconds']:.1f} s)")  # fmt: skip
            bar.update(1)
        per_seed.append(record)
    bar.close()
    out = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "n": int(len(y_arr)),
        "dim": int(X.shape[1]),
        "per_seed": per_seed,
        "seconds": time.perf_counter() - t0,
    }
    out["share"] = {c: float(np.mean([r["share"][c] for r in per_seed])) for c in per_seed[0]["share"]}
    out["gender_probe_raw_test_accuracy"] = float(np.mean([r["gender_probe_raw_test_accuracy"] for r in per_seed]))
    out["methods"] = summarise(per_seed, cfg.methods, "test_gold")
    out["methods_predicted_gender"] = summarise(per_seed, cfg.methods, "test_predicted")
    out["methods_dev"] = summarise(per_seed, cfg.methods, "dev_gold")
    return out


def summarise(per_seed: list[dict[str, Any]], methods: Sequence[str], key: str) -> dict[str, dict[str, Any]]:
    """Mean (and ``*_std``) over seeds of every scalar metric; per-occupation gaps averaged.

    Args:
        per_seed: The per-seed records of :func:`run_protocol`.
        methods: The methods summarised.
        key: The split and gender source, e.g. ``"test_gold"``.

    Returns:
        dict: ``{method: {metric: mean, metric_std: std, "tpr_gaps": {...}}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in methods:
        rows = [rec[name][key] for rec in per_seed]
        summary: dict[str, Any] = {}
        for metric in rows[0]:
            if metric == "tpr_gaps":
                # every occupation of any seed (seed 0's list dropped one missing there), mean over seeds having it
                classes = list(dict.fromkeys(c for r in rows for c in r["tpr_gaps"]))
                summary["tpr_gaps"] = {
                    c: float(np.mean([r["tpr_gaps"][c] for r in rows if c in r["tpr_gaps"]])) for c in classes
                }
                continue
            vals = np.array([r[metric] for r in rows], dtype=np.float64)
            summary[metric] = float(np.mean(vals))
            summary[f"{metric}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        out[name] = summary
    return out
