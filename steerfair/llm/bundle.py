"""A fitted steering bundle: per-layer, per-group maps onto the ideal, a group probe, and metadata.

``fit_bundle(stats)`` turns streamed activation statistics (:class:`steerfair.llm.stats.ActivationStats`)
into label-free per-group maps for each layer (the group maps of a :class:`steerfair.steering.SteeringTransform`:
the group's two-moment law onto the ideal group law) plus a linear group probe (LDA from the same moments). With
``target="shared"`` the maps are instead each group's garbling onto one common law per class
(:class:`steerfair.shared_target.SharedTargetSteering`, docs/shared_target.md): an affine part plus a Gaussian noise
factor per group, which the hooks draw from a seeded generator. The bundle is what :func:`steerfair.llm.steer`
accepts, and it saves to safetensors + a JSON sidecar (no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..covariance import UNSET, CovarianceEstimator
from ..files import atomic_write, decode_label, encode_label, read_bytes, safetensors_metadata, sha256
from ..ideal.solve import CRITERIA, Criterion, Family, Intervention, check_family
from ..maps import AffineMap
from ..model import GroupConditionalModel
from ..random_state import is_seed
from ..shared_target import TARGETS, SharedTarget, SharedTargetSteering, Target
from ..steering import Coordinates, SteeringTransform
from ..validation import as_int
from .probe import LinearProbe

__all__ = ["SteeringBundle", "fit_bundle", "layer_model"]

_FORMAT = "steerfair.steering_bundle"
_VERSION = 2  # 2: the sidecar records the tensor names and checksum, the tensors the groups
_NOISE_VERSION = 3  # 3: version 2 plus garbling noise factors (written only by bundles that have them)
_VERSIONS = (1, _VERSION, _NOISE_VERSION)


def _check_seed(random_state: Any) -> int | None:
    """``None`` or a non-negative int (what a JSON sidecar can record)."""
    if random_state is None:
        return None
    if is_seed(random_state):
        return int(random_state)
    raise ValueError(
        f"random_state must be None or a non-negative int (it is saved with the bundle); got {random_state!r}"
    )


def _check_metadata(value: Any, where: str = "metadata") -> None:
    """Refuse metadata that JSON would change on the way back (non-str keys, tuples, sets, objects)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has the key {k!r}, which JSON stores as a string; use str keys")
            _check_metadata(v, f"{where}[{k!r}]")
    elif isinstance(value, list):
        for j, v in enumerate(value):
            _check_metadata(v, f"{where}[{j}]")
    elif isinstance(value, float) and not np.isfinite(value):
        raise ValueError(f"{where} is {value!r}, which strict JSON cannot hold; use None")
    elif not (value is None or isinstance(value, (str, bool, int, float, np.generic, np.ndarray))):
        raise ValueError(
            f"{where} is a {type(value).__name__}, which JSON would not give back as it is; use str keys and JSON "
            "values (dict, list, str, numbers, bool, None)"
        )


def _json_value(value: Any) -> Any:
    """JSON for numpy scalars and arrays in metadata; anything else non-JSON raises ``TypeError`` (never its repr)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True, eq=False)
class SteeringBundle:
    """Maps per layer and group, optional probes per layer, and what they were fitted for.

    Attributes:
        maps: ``{layer index: {group: AffineMap}}``.
        groups: the group labels, in the order of every layer's maps.
        probes: ``{layer index: LinearProbe}`` (may be empty).
        layer_path: the module path of the blocks (``None``: automatic discovery).
        metadata: model name, criterion, intervention, pooling, KL per layer, ``target``, ...
        noise: ``{layer index: {group: F}}``, the ``(d, r)`` factor of each group's garbling noise covariance
            ``R = F F^T`` (``target="shared"``; ``r = 0`` for a deterministic map). Empty for the ideal's maps.
            A hook adds ``F z``, ``z ~ N(0, I_r)`` drawn per steered position, to ``maps[layer][group](h)``.
    """

    maps: dict[int, dict[Any, AffineMap]]
    groups: tuple[Any, ...]
    probes: dict[int, LinearProbe] = field(default_factory=dict)
    layer_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    noise: dict[int, dict[Any, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every layer's maps, noise factors and probe columns in the order of ``groups`` (saved by position)
        groups = tuple(self.groups)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(
            self,
            "maps",
            {as_int(layer, "a layer key"): self._in_order(m, "maps", layer) for layer, m in self.maps.items()},
        )
        object.__setattr__(
            self,
            "noise",
            {
                as_int(layer, "a layer key"): self._in_order(m, "noise factors", layer)
                for layer, m in self.noise.items()
            },
        )
        probes = {}
        for layer, p in self.probes.items():
            cols = p.columns_for(groups, f"the probe of layer {layer}")
            probes[as_int(layer, "a layer key")] = (
                p if list(p.groups) == list(groups) else LinearProbe(p.W[:, cols], p.c[cols], groups)
            )
        object.__setattr__(self, "probes", probes)
        for layer, by_group in self.noise.items():
            if layer not in self.maps:
                raise ValueError(f"noise is given for layer {layer}, which has no maps")
            for g, F in by_group.items():
                d = self.maps[layer][g].d_out
                if not (isinstance(F, np.ndarray) and F.ndim == 2 and F.shape[0] == d):
                    raise ValueError(f"layer {layer}, group {g!r}: a noise factor must be a ({d}, r) array")

    def _in_order(self, by_group: Any, what: str, layer: Any) -> dict[Any, Any]:
        """``by_group`` (a ``{group: value}`` dict) in the order of ``groups``; refused unless its keys are exactly
        the bundle's groups."""
        if not isinstance(by_group, Mapping):
            raise ValueError(
                f"layer {layer}: the {what} must be a {{group: value}} dict; got {type(by_group).__name__}"
            )
        keys = list(by_group)
        if len(keys) != len(self.groups) or any(not any(k == g for k in keys) for g in self.groups):
            raise ValueError(
                f"layer {layer}: the {what} are given for groups {keys}, the bundle's groups are {list(self.groups)}; "
                "give every layer one entry per group"
            )
        return {g: next(v for k, v in by_group.items() if k == g) for g in self.groups}

    @property
    def layers(self) -> list[int]:
        """The steered layer indices."""
        return sorted(self.maps)

    @property
    def target(self) -> str:
        """``"ideal"`` (deterministic maps onto the nearest ideal) or ``"shared"`` (garblings onto a common law)."""
        return str(self.metadata.get("target", "ideal"))

    def layer_maps(self) -> dict[int, dict[Any, AffineMap]]:
        """The maps in the form :func:`steerfair.llm.attach` takes (the deterministic parts of garblings)."""
        return self.maps

    def layer_noise(self) -> dict[int, dict[Any, np.ndarray]]:
        """The garbling noise factors per layer and group (empty: every map is deterministic)."""
        return self.noise

    def to_low_rank(self, rank: int | None = None) -> SteeringBundle:
        """The same bundle with every map in identity-plus-rank-``rank`` form (truncated SVD of ``A - I``); the
        noise factors are kept as they are."""
        maps = {layer: {g: T.to_low_rank(rank) for g, T in m.items()} for layer, m in self.maps.items()}
        # the rank the maps have (a map of lower rank, or d, stays as it is)
        meta = {**self.metadata, "low_rank": max((T.rank or 0 for m in maps.values() for T in m.values()), default=0)}
        return SteeringBundle(maps, self.groups, self.probes, self.layer_path, meta, self.noise)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (safetensors, float64) and ``path + ".json"`` (groups, layers, metadata) as one unit.

        Everything is serialised and checked first; both files are then written to temporary files in the same
        directory, synced and renamed over the old ones, so a failing save leaves an earlier bundle loadable. The
        sidecar records the tensor names and the SHA-256 of the tensor file, and the tensor file records the group
        order: :meth:`load` refuses a sidecar that does not belong to its tensors. Garbling noise factors with at
        least one column are stored as ``noise{layer}.group{j}.F`` (the sidecar lists the ``noise_layers``; a bundle
        with noise is written as format version 3, any other as version 2, which older releases read).

        Raises:
            ValueError: a group label that cannot be stored (str, int, float, bool, None or tuples of those), or
                metadata that is not JSON-serialisable (nothing is written then).
        """
        from safetensors.numpy import save

        target = os.fspath(path)
        _check_metadata(self.metadata)
        try:
            groups = [encode_label(g) for g in self.groups]
        except ValueError as exc:
            raise ValueError(f"cannot save the bundle's groups: {exc}") from None
        tensors: dict[str, np.ndarray] = {}
        for layer, m in self.maps.items():
            for j, T in enumerate(m.values()):
                tensors.update(T.state_dict(prefix=f"layer{layer}.group{j}."))
        for layer, p in self.probes.items():
            tensors[f"probe{layer}.W"] = p.W
            tensors[f"probe{layer}.c"] = p.c
        for layer, by_group in self.noise.items():
            for j, F in enumerate(by_group.values()):
                if F.shape[1]:  # a deterministic map stores nothing (safetensors and zero-size tensors)
                    tensors[f"noise{layer}.group{j}.F"] = np.asarray(F, dtype=np.float64)
        group_json = json.dumps(groups)
        data = save(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()},
            metadata={"format": _FORMAT, "groups": group_json},
        )
        side = {
            "format": _FORMAT,
            "version": _NOISE_VERSION if self.noise else _VERSION,
            "groups": groups,
            "layers": self.layers,
            "probe_layers": sorted(self.probes),
            "layer_path": self.layer_path,
            "tensors": sorted(tensors),
            "sha256": sha256(data),
            "metadata": self.metadata,
        }
        if self.noise:
            side["noise_layers"] = sorted(self.noise)
        try:
            text = json.dumps(side, indent=2, default=_json_value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"the bundle's metadata is not JSON-serialisable ({exc}); use str keys and JSON values"
            ) from None
        atomic_write({target: data, f"{target}.json": text.encode("utf-8")})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringBundle:
        """Read a bundle written by :meth:`save` (tensors and JSON only; nothing is executed).

        Raises:
            FileNotFoundError: the tensor file or its ``.json`` sidecar is missing.
            ValueError: a file that cannot be read or parsed, or a sidecar that does not belong to the tensor file
                (other checksum, tensor names or group order: the two files come from different saves).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load

        where = os.fspath(path)
        advice = "save the bundle again with SteeringBundle.save (it writes both files)"
        data = read_bytes(where, "bundle tensor file", advice)
        raw = read_bytes(f"{where}.json", "bundle sidecar", advice)
        try:
            side = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}.json is not valid JSON ({exc}); {advice}") from None
        if not isinstance(side, dict) or side.get("format") != _FORMAT:
            raise ValueError(f"{where}.json is not a steerfair steering bundle")
        version = side.get("version")
        if version not in _VERSIONS:
            raise ValueError(f"{where}.json: unsupported bundle version {version!r}; upgrade steerfair")
        stored = safetensors_metadata(data, repr(where))
        try:
            groups = tuple(decode_label(g) for g in side["groups"])
            layers = [int(layer) for layer in side["layers"]]
            probe_layers = [int(layer) for layer in side["probe_layers"]]
            noise_layers = [int(layer) for layer in side.get("noise_layers", [])]  # absent before version 3
            # checked whatever version the sidecar claims (a sidecar edited to version 1 skipped them)
            if (version != 1 or "sha256" in side) and side.get("sha256") != sha256(data):
                raise ValueError(
                    "the tensor file's SHA-256 differs from the one its sidecar recorded: the two files come "
                    "from different saves"
                )
            if "groups" in stored and tuple(decode_label(g) for g in json.loads(stored["groups"])) != groups:
                raise ValueError("its groups are not those (or not in the order) the tensors were saved for")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}.json does not match the bundle {where!r}: {exc}; {advice}") from None
        try:
            tensors = load(data)
        except (SafetensorError, ValueError, TypeError) as exc:
            raise ValueError(f"{where!r} is not a readable safetensors file ({exc}); {advice}") from None
        if (version != 1 or "tensors" in side) and sorted(tensors) != side.get("tensors"):
            raise ValueError(f"{where}.json lists other tensors than {where!r} holds; {advice}")
        prefixes = tuple(
            [f"layer{layer}." for layer in layers] + [f"probe{layer}." for layer in probe_layers]
            + [f"noise{layer}." for layer in noise_layers]
        )  # fmt: skip
        unused = sorted(name for name in tensors if not name.startswith(prefixes))
        if unused:  # a sidecar whose layer lists were cut would drop these silently
            raise ValueError(f"{where}.json does not account for tensors {unused[:5]} of {where!r}; {advice}")
        try:
            maps = {
                layer: {
                    g: AffineMap.from_state_dict(tensors, prefix=f"layer{layer}.group{j}.")
                    for j, g in enumerate(groups)
                }
                for layer in layers
            }
            probes = {
                layer: LinearProbe(tensors[f"probe{layer}.W"], tensors[f"probe{layer}.c"], groups)
                for layer in probe_layers
            }
            noise = {
                layer: {
                    g: tensors.get(f"noise{layer}.group{j}.F", np.zeros((maps[layer][g].d_out, 0)))
                    for j, g in enumerate(groups)
                }
                for layer in noise_layers
            }
            return cls(maps, groups, probes, side.get("layer_path"), side.get("metadata", {}), noise)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{where!r}: the tensors do not match the sidecar ({exc}); {advice}") from None


def layer_model(
    stats: Any,
    layer: int,
    *,
    rank: int | None = None,
    estimator: CovarianceEstimator | None = None,
    shrinkage: Any = UNSET,
    reg: Any = UNSET,
) -> tuple[GroupConditionalModel, Coordinates]:
    """The group/label model of one layer's statistics, in the coordinates steering works in.

    Args:
        stats: an ``ActivationStats`` with labels (>= 2 classes) and >= 2 groups.
        layer: one of ``stats.layers``.
        rank: restrict to the top-``rank`` principal subspace of the layer's pooled activations (``None``: the
            full space); the model is then that of the projected statistics.
        estimator: the :class:`~steerfair.covariance.CovarianceEstimator` of every cell covariance.
        shrinkage: the estimator's shrinkage, as a loose keyword (not together with ``estimator``).
        reg: the estimator's regularisation, as a loose keyword (not together with ``estimator``).

    Returns:
        ``(model, coordinates)``: the model in the working coordinates, and the
        :class:`~steerfair.steering.Coordinates` (``coordinates.basis`` is the ``(d, rank)`` subspace, or ``None``).

    Raises:
        ValueError: for an undeclared layer, a ``rank`` outside ``1..d``, unlabelled statistics or an empty cell.
    """
    if rank is not None and (
        isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= stats.dim
    ):
        raise ValueError(f"rank must be an integer in 1..{stats.dim}; got {rank!r}")
    rank = None if rank is None else int(rank)
    est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
    if rank is None:
        return stats.to_model(layer, estimator=est), Coordinates()
    cells = stats.cell_statistics(layer)
    if np.any(cells.counts <= 0):
        raise ValueError("every (group, label) cell needs samples to fit a bundle")
    coords = Coordinates.principal(cells.pooled()[2], rank)
    working = cells if coords.basis is None else cells.project(coords.basis)
    return GroupConditionalModel.from_statistics(working, estimator=est), coords


def fit_bundle(
    stats: Any,
    *,
    layers: int | list[int] | None = None,
    criterion: Criterion = "equal_opportunity",
    intervention: Intervention = "all",
    estimator: CovarianceEstimator | None = None,
    shrinkage: Any = UNSET,
    reg: Any = UNSET,
    probe: bool = True,
    rank: int | None = None,
    layer_path: str | None = None,
    metadata: dict[str, Any] | None = None,
    target: Target = "ideal",
    random_state: int | None = None,
    family: Family = "isotropic",
) -> SteeringBundle:
    """Fit the per-group steering maps (and group probes) of every layer from activation statistics.

    With ``target="ideal"`` (default) each layer's maps are the label-free group maps of a
    :class:`steerfair.steering.SteeringTransform` of the layer's model (see :func:`layer_model`), lifted to the full
    hidden space. With ``target="shared"`` they are the garblings of a
    :class:`steerfair.shared_target.SharedTargetSteering` of the same model (the word of ``FairSteerer(target=...)``
    and ``IdealTemplateSteering(target=...)``): group ``a``'s map ``K_a(h) = A_a h + b_a + F_a z``,
    ``z ~ N(0, I)``, carries every class-conditional law of the group (homoscedastic Gaussian cells, within-class
    covariance pooled with the group's class priors) onto one common law ``N(m_y, C)`` per class, without the label
    (docs/shared_target.md). The affine parts are :attr:`SteeringBundle.maps`, the noise factors
    :attr:`SteeringBundle.noise`; the hooks add the noise per steered position (see :func:`steerfair.llm.attach`).

    Args:
        stats: an ``ActivationStats`` with labels (>= 2 classes) and >= 2 groups.
        layers: subset of ``stats.layers``; default all.
        criterion: the fairness criterion (see :func:`steerfair.solve_nearest_ideal`).
        intervention: which groups move (see :func:`steerfair.solve_nearest_ideal`).
        estimator: the :class:`~steerfair.covariance.CovarianceEstimator` of every cell covariance (default: the
            maximum-likelihood covariance with ``reg="auto"``; Ledoit-Wolf needs rows and is not available).
        shrinkage: the estimator's shrinkage as a loose keyword (compatibility; not together with ``estimator``).
        reg: the estimator's regularisation as a loose keyword (compatibility; not together with ``estimator``).
        probe: also fit an LDA group probe per layer (for inference without the group), from the group moments
            pooled over labels.
        rank: steer only inside the top-``rank`` principal subspace of the layer's pooled activations
            (``None``: the full space). The ideal is solved for the projected moments and each map becomes
            ``h -> h + P (A_r - I) P^T h + P b_r`` (identity plus rank ``rank``, stored low-rank); directions
            outside the subspace, where a small corpus gives (near-)singular covariances, are left alone.
        layer_path: the module path of the blocks, recorded in the bundle.
        metadata: extra metadata for the bundle.
        target: ``"ideal"`` (the nearest ideal's group maps, deterministic) or ``"shared"`` (garblings onto one
            common law per class; ``criterion`` and ``intervention`` are then not used). With ``rank`` the shared
            target is solved in the subspace and its noise lies in the subspace too.
        random_state: ``target="shared"``: the seed (``None`` or a non-negative int) recorded in the bundle, from
            which a hook's noise generator is seeded unless ``attach(..., random_state=...)`` overrides it
            (``None``: fresh noise at every attach).
        family: ``target="ideal"``: the ideal set searched, ``"isotropic"`` (the paper's) or ``"affine"`` (see
            :func:`steerfair.solve_nearest_ideal`; with many classes or a large ``rank`` the affine solver is slow,
            docs/benchmarks.md). Recorded in ``metadata["family"]``.

    Returns:
        The :class:`SteeringBundle` (``metadata["target"]``; with ``target="shared"`` also
        ``metadata["random_state"]`` and ``metadata["shared"][str(layer)]``: the ``reference`` group index, whether
        the target is the ``greatest`` (most informative) one and each group's ``noise_rank``; ``metadata["pooling"]``:
        the statistics' pooling when they record it).

    Raises:
        ValueError: for layers without statistics, a bad ``rank``, an unknown ``target``, a bad ``random_state``,
            or statistics a model cannot be fitted from.
    """
    if target not in TARGETS or target not in ("ideal", "shared"):
        accepted = tuple(t for t in TARGETS if t in ("ideal", "shared"))
        raise ValueError(f"unknown target {target!r} for fit_bundle; use target= one of {accepted}")
    seed = _check_seed(random_state)
    check_family(family)
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; use one of {CRITERIA}")
    if isinstance(layers, bool):
        raise ValueError(f"layers must be a layer index or a list of them; got {layers!r}")
    chosen = (
        list(stats.layers)
        if layers is None
        else [int(layers)]
        if isinstance(layers, (int, np.integer))
        else list(layers)
    )
    if not chosen:
        raise ValueError("layers is empty; pass None (every layer with statistics) or some of them")
    unknown = [layer for layer in chosen if layer not in list(stats.layers)]
    if unknown:
        raise ValueError(f"layers {unknown} have no statistics (collected: {list(stats.layers)})")
    est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
    maps: dict[int, dict[Any, AffineMap]] = {}
    noise: dict[int, dict[Any, np.ndarray]] = {}
    probes: dict[int, LinearProbe] = {}
    kls: dict[str, float] = {}
    shared: dict[str, dict[str, Any]] = {}
    groups: tuple[Any, ...] = ()
    for layer in chosen:
        model, coords = layer_model(stats, layer, rank=rank, estimator=est)
        groups = tuple(model.groups.tolist())
        if target == "shared":
            solved = SharedTargetSteering.fit(model, coords).target
            assert isinstance(solved, SharedTarget)  # the all-class target (SharedTargetSteering.fit solves it)
            garblings = dict(zip(groups, solved.garblings, strict=True))
            maps[layer] = {g: coords.lift_map(K.linear) for g, K in garblings.items()}
            noise[layer] = {g: coords.lift_factor(K.noise_factor) for g, K in garblings.items()}
            shared[str(layer)] = {
                "reference": int(solved.reference),
                "greatest": bool(solved.greatest),
                "noise_rank": [int(K.noise_factor.shape[1]) for K in solved.garblings],
            }
        else:
            steering = SteeringTransform.fit(model, criterion, intervention, coordinates=coords, family=family)
            maps[layer] = steering.full_group_maps()
            kls[str(layer)] = float(steering.solution.kl)
        if probe:
            by_group = stats.cell_statistics(layer).pooled_over_classes()
            probes[layer] = LinearProbe.from_moments(
                groups, by_group.counts[:, 0], by_group.means[:, 0], by_group.covs[:, 0]
            )
    if target == "shared":
        meta: dict[str, Any] = {"target": target, "rank": rank, "random_state": seed, "shared": shared}
    else:
        meta = {"target": target, "criterion": criterion, "intervention": intervention, "rank": rank, "kl": kls,
                "family": family}  # fmt: skip
    if getattr(stats, "pooling", None) is not None:  # what the maps were fitted on (attach warns on a mismatch)
        meta["pooling"] = stats.pooling
    return SteeringBundle(maps, groups, probes, layer_path, {**meta, **(metadata or {})}, noise)
