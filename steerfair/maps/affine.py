"""Affine maps ``x -> A x + b`` acting on the rows of numpy arrays and torch tensors.

The linear part is stored either dense or as *identity plus a low-rank update*
``A = I + U V^T`` (``U, V`` of shape ``(d, r)``), which costs ``O(d r)`` memory and time and is
never expanded unless :attr:`AffineMap.A` is read. Maps persist to ``safetensors`` with JSON
metadata (no pickle): what a user saves is only numbers.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..validation import as_float_array, as_int, as_vector

__all__ = ["AffineMap"]

_FORMAT = "steerfair.AffineMap"
_VERSION = "1"


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


class AffineMap:
    """An affine map ``x -> A x + b`` on ``R^d`` (rows are samples: ``y = x @ A.T + b``).

    Args:
        A: dense ``(d_out, d_in)`` linear part.
        b: offset of length ``d_out`` (defaults to zero).

    Use :meth:`low_rank` for the ``I + U V^T`` form, :meth:`identity`, :meth:`translation` for
    mean shifts. Instances are immutable; parameters are float64. Application casts back to the
    input dtype (half-precision torch inputs are computed in float32).
    """

    __slots__ = ("_A", "_U", "_V", "_b", "_cache", "meta")

    def __init__(self, A: Any, b: Any = None, *, meta: dict[str, Any] | None = None) -> None:
        A = as_float_array(A, "A")
        if A.ndim != 2 or 0 in A.shape:
            raise ValueError(f"A must be a non-empty 2-D matrix (d_out, d_in); got shape {A.shape}")
        d_out = A.shape[0]
        b = np.zeros(d_out) if b is None else as_vector(b, "b")
        if b.shape[0] != d_out:
            raise ValueError(f"b has length {b.shape[0]} but A maps to dimension {d_out}")
        self._A: np.ndarray | None = _ro(A)
        self._U: np.ndarray | None = None
        self._V: np.ndarray | None = None
        self._b = _ro(b)
        self._cache: dict[Any, Any] = {}
        self.meta = dict(meta or {})

    # ----------------------------------------------------------- constructors
    @classmethod
    def low_rank(cls, U: Any, V: Any, b: Any = None, *, meta: dict[str, Any] | None = None) -> AffineMap:
        """``x -> x + U V^T x + b`` (``A = I + U V^T``) stored in ``O(d r)``."""
        U = as_float_array(U, "U")
        V = as_float_array(V, "V")
        if U.ndim == 1:
            U = U[:, None]
        if V.ndim == 1:
            V = V[:, None]
        if U.ndim != 2 or U.shape != V.shape or U.shape[0] == 0:
            raise ValueError(f"U and V must both be (d, r) with d >= 1; got {U.shape} and {V.shape}")
        d = U.shape[0]
        b = np.zeros(d) if b is None else as_vector(b, "b", dim=d)
        self = cls.__new__(cls)
        self._A = None
        self._U, self._V, self._b = _ro(U), _ro(V), _ro(b)
        self._cache = {}
        self.meta = dict(meta or {})
        return self

    @classmethod
    def identity(cls, d: int) -> AffineMap:
        """The identity on ``R^d`` (rank-0 low-rank form)."""
        d = as_int(d, "d", low=1)
        return cls.low_rank(np.zeros((d, 0)), np.zeros((d, 0)))

    @classmethod
    def translation(cls, b: Any) -> AffineMap:
        """``x -> x + b`` (a mean shift)."""
        b = as_vector(b, "b")
        return cls.low_rank(np.zeros((b.shape[0], 0)), np.zeros((b.shape[0], 0)), b)

    # -------------------------------------------------------------- accessors
    @property
    def is_low_rank(self) -> bool:
        """True when stored as ``I + U V^T``."""
        return self._A is None

    @property
    def rank(self) -> int | None:
        """Rank of the update ``U V^T`` for low-rank maps; ``None`` for dense maps."""
        return None if self._U is None else int(self._U.shape[1])

    @property
    def d_in(self) -> int:
        """Input dimension."""
        return int(self._A.shape[1]) if self._A is not None else int(self._factors()[0].shape[0])

    @property
    def d_out(self) -> int:
        """Output dimension."""
        return int(self._b.shape[0])

    @property
    def A(self) -> np.ndarray:
        """Dense linear part (formed on demand for low-rank maps)."""
        if self._A is not None:
            return self._A
        if "A" not in self._cache:
            U, V = self._factors()
            A = np.eye(self.d_in) + U @ V.T
            A.setflags(write=False)
            self._cache["A"] = A
        return self._cache["A"]

    @property
    def b(self) -> np.ndarray:
        """Offset."""
        return self._b

    @property
    def U(self) -> np.ndarray | None:
        """Left factor of the low-rank update (``None`` for dense maps)."""
        return self._U

    @property
    def V(self) -> np.ndarray | None:
        """Right factor of the low-rank update (``None`` for dense maps)."""
        return self._V

    def __repr__(self) -> str:
        kind = f"low_rank(rank={self.rank})" if self.is_low_rank else "dense"
        return f"AffineMap(d_in={self.d_in}, d_out={self.d_out}, {kind})"

    def __eq__(self, other: object) -> bool:
        """Equal maps: the same offset and the same matrix (exactly), whatever the storage (dense or ``I + U V^T``)."""
        if not isinstance(other, AffineMap) or (self.d_in, self.d_out) != (other.d_in, other.d_out):
            return False
        if not np.array_equal(self._b, other._b):
            return False
        if self.is_low_rank and other.is_low_rank:
            (U1, V1), (U2, V2) = self._factors(), other._factors()
            if np.array_equal(U1, U2) and np.array_equal(V1, V2):
                return True
        return bool(np.array_equal(self.A, other.A))

    # Defining __eq__ sets __hash__ to None: maps compare by value and are unhashable.

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        # (U, V) of a low-rank map; dense maps store A instead.
        if self._U is None or self._V is None:
            raise AssertionError("not a low-rank AffineMap")
        return self._U, self._V

    def _dense(self) -> np.ndarray:
        # A of a dense map; low-rank maps store (U, V) instead.
        if self._A is None:
            raise AssertionError("not a dense AffineMap")
        return self._A

    # ------------------------------------------------------------ application
    def __call__(self, x: Any) -> Any:
        """Apply to the rows of ``x`` (numpy array or torch tensor, any leading batch dims).

        A numpy ``x`` with NaN or infinite values is refused (naming ``x``); a torch tensor is not checked (that
        would wait for the device on every call of a hook) and NaN passes through to the output.
        """
        if hasattr(x, "detach") and hasattr(x, "device"):
            return self._apply_torch(x)
        arr = np.asarray(x)
        out_dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
        x64 = as_float_array(arr, "x")
        if x64.ndim == 0 or x64.shape[-1] != self.d_in:
            raise ValueError(
                f"x has last dimension {x64.shape[-1] if x64.ndim else 0}; the map expects rows of {self.d_in} features"
            )
        if self._A is not None:
            y = x64 @ self._A.T + self._b
        else:
            U, V = self._factors()
            y = x64 + (x64 @ V) @ U.T + self._b
        return y.astype(out_dtype, copy=False)

    def torch_params(self, device: Any, dtype: Any) -> tuple[Any, ...]:
        """Parameters as torch tensors on ``device`` in ``dtype`` (cached per device/dtype)."""
        import torch

        key = ("torch", str(device), dtype)
        if key not in self._cache:
            # one memory layout whatever the arrays' (an SVD's Fortran-ordered factors and their reloaded C-ordered
            # copies must give bit-identical products)
            conv = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
            if self._A is not None:
                self._cache[key] = (conv(self._A.T.copy()), conv(self._b))
            else:
                U, V = self._factors()
                self._cache[key] = (conv(U.T.copy()), conv(V), conv(self._b))
        return self._cache[key]

    def _apply_torch(self, x: Any) -> Any:
        import torch

        if x.ndim == 0 or x.shape[-1] != self.d_in:
            raise ValueError(f"x has last dimension {x.shape[-1] if x.ndim else 0}; map expects {self.d_in}")
        if not torch.is_floating_point(x):
            raise TypeError(f"cannot apply an AffineMap to a tensor of dtype {x.dtype}")
        compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        xc = x.to(compute)
        params = self.torch_params(x.device, compute)
        if self._A is not None:
            AT, b = params
            y = torch.addmm(b, xc.reshape(-1, self.d_in), AT).reshape(*x.shape[:-1], self.d_out)
        else:
            UT, V, b = params
            y = xc + (xc @ V) @ UT + b
        return y.to(x.dtype)

    # ------------------------------------------------------------ algebra
    def compose(self, other: AffineMap) -> AffineMap:
        """``self ∘ other``: ``x -> self(other(x))``. Low-rank ∘ low-rank stays low-rank."""
        if not isinstance(other, AffineMap):
            raise TypeError("compose expects an AffineMap")
        if other.d_out != self.d_in:
            raise ValueError(f"cannot compose: inner map outputs {other.d_out}, outer expects {self.d_in}")
        if self.is_low_rank and other.is_low_rank:
            # (I + U1 V1^T)(I + U2 V2^T) = I + [U1, U2 + U1 V1^T U2] [V1, V2]^T
            (U1, V1), (U2, V2) = self._factors(), other._factors()
            U = np.hstack([U1, U2 + U1 @ (V1.T @ U2)])
            V = np.hstack([V1, V2])
            b = self(other._b[None])[0]
            return AffineMap.low_rank(U, V, b)
        return AffineMap(self.A @ other.A, self.A @ other.b + self.b)

    def inverse(self) -> AffineMap:
        """The inverse map (Woodbury identity for low-rank maps; LU solve for dense ones).

        Raises:
            ValueError: the map is singular: the condition number of its matrix (a low-rank map's dense form up to
                :data:`DENSE_CHECK_MAX_DIM`, its ``I + V^T U`` beyond) after scaling every row and column to unit
                largest entry exceeds ``1e14``. The scaling makes the test
                free of units: a change of units such as ``diag(1e-8, 1e8)`` is invertible.
        """
        if self.d_in != self.d_out:
            raise ValueError("only square maps are invertible")
        if self.is_low_rank:
            r = self.rank or 0
            U, V = self._factors()
            K = np.eye(r) + V.T @ U
            # the test of the dense form where it is affordable (the same answer in both storage forms; scaling the
            # rows of K alone called a 1 x 1 K of 1e-15 well conditioned), of K beyond
            _check_invertible(self.to_dense()._dense() if self.d_in <= DENSE_CHECK_MAX_DIM else K)
            KinvVt = np.linalg.solve(K, V.T)
            # (I + U V^T)^-1 = I - U (I + V^T U)^-1 V^T
            U2, V2 = -U, KinvVt.T
            b2 = -(self._b + U2 @ (V2.T @ self._b))
            return AffineMap.low_rank(U2, V2, b2)
        A = self._dense()
        _check_invertible(A)
        Ainv = np.linalg.solve(A, np.eye(A.shape[0]))
        return AffineMap(Ainv, -Ainv @ self._b)

    def to_low_rank(self, rank: int | None = None, *, rtol: float = 1e-12) -> AffineMap:
        """Compress ``A - I`` by a truncated SVD (exact when ``A - I`` has rank <= ``rank``); a low-rank map of higher
        rank is truncated to its best rank-``rank`` part the same way.

        Raises:
            ValueError: ``rank`` is not ``None`` or a positive integer.
        """
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1):
            raise ValueError(f"rank must be None or a positive integer; got {rank!r}")
        if self.is_low_rank:
            U, V = self._factors()
            if rank is None or U.shape[1] <= rank:
                return self
            # best rank-r part of U V^T: QR of both factors, then the SVD of the small core
            qu, ru = np.linalg.qr(U)
            qv, rv = np.linalg.qr(V)
            u, s, vt = np.linalg.svd(ru @ rv.T)
            return AffineMap.low_rank((qu @ u[:, :rank]) * s[:rank], qv @ vt[:rank].T, self._b)
        if self.d_in != self.d_out:
            raise ValueError("only square maps have an identity-plus-low-rank form")
        u, s, vt = np.linalg.svd(self._dense() - np.eye(self.d_in))
        keep = int(np.sum(s > rtol * max(s[0] if s.size else 0.0, 1e-300))) if rank is None else int(rank)
        return AffineMap.low_rank(u[:, :keep] * s[:keep], vt[:keep].T, self._b)

    def to_dense(self) -> AffineMap:
        """The same map with a dense linear part."""
        return self if not self.is_low_rank else AffineMap(self.A, self.b, meta=self.meta)

    # ------------------------------------------------------------ persistence
    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Named float64 arrays describing the map (for safetensors)."""
        if self.is_low_rank:
            U, V = self._factors()
            return {f"{prefix}U": U, f"{prefix}V": V, f"{prefix}b": self._b}
        return {f"{prefix}A": self._dense(), f"{prefix}b": self._b}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, np.ndarray], prefix: str = "") -> AffineMap:
        """Inverse of :meth:`state_dict`."""
        needed = ["A", "b"] if f"{prefix}A" in tensors else ["U", "V", "b"] if f"{prefix}U" in tensors else []
        missing = [f"{prefix}{k}" for k in needed if f"{prefix}{k}" not in tensors]
        if missing:
            raise ValueError(f"the stored affine map lacks the tensor(s) {missing}; the file is incomplete")
        if f"{prefix}A" in tensors:
            return cls(tensors[f"{prefix}A"], tensors[f"{prefix}b"])
        if f"{prefix}U" in tensors:
            return cls.low_rank(tensors[f"{prefix}U"], tensors[f"{prefix}V"], tensors[f"{prefix}b"])
        raise ValueError(f"no affine map stored under prefix {prefix!r}")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to ``path`` in safetensors format (float64, bit-exact) with JSON metadata, atomically (through
        :func:`steerfair.files.atomic_write`: a failed write leaves an earlier file whole). ``meta`` must hold JSON
        values (numpy scalars and arrays are written as numbers and lists; tuples come back as lists); anything else
        is refused (it was written as its ``str``: ``np.int64(3)`` came back as ``"3"``)."""
        from safetensors.numpy import save

        from ..files import atomic_write

        meta = {"format": _FORMAT, "version": _VERSION, "kind": "low_rank" if self.is_low_rank else "dense"}
        meta["meta"] = json.dumps(self.meta, sort_keys=True, default=_json_value)
        data = save({k: np.ascontiguousarray(v) for k, v in self.state_dict().items()}, metadata=meta)
        atomic_write({os.fspath(path): data})  # the earlier file stays whole if the write fails

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AffineMap:
        """Read a map written by :meth:`save` (no code is executed).

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: a file that is not a readable safetensors file, or was not written by :meth:`save`.
        """
        from safetensors import SafetensorError, safe_open

        where = repr(os.fspath(path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"AffineMap file {where} does not exist; pass the path given to AffineMap.save")
        try:
            with safe_open(os.fspath(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"{where} is not a steerfair AffineMap file (format={meta.get('format')!r})")
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"cannot read AffineMap file {where} ({exc}); write it with AffineMap.save") from None
        out = cls.from_state_dict(tensors)
        try:
            stored = json.loads(meta.get("meta", "{}"))
        except ValueError:
            stored = None
        if not isinstance(stored, dict):
            raise ValueError(f"AffineMap file {where} has damaged metadata (not a JSON object); write it again")
        out.meta = stored
        return out


#: low-rank maps up to this dimension are tested for singularity in their dense form (:meth:`AffineMap.inverse`)
DENSE_CHECK_MAX_DIM = 2048


def _check_invertible(A: np.ndarray) -> None:
    """Raise ``ValueError`` when ``A`` is singular to working precision: the condition number of ``A`` with every row
    and then every column scaled to unit largest entry (so that a change of units is not called singular) exceeds
    ``1e14``, or an entire row or column is zero."""
    if A.size == 0:  # a rank-0 low-rank map: the identity
        return
    rows = np.max(np.abs(A), axis=1)
    scaled = A / np.where(rows > 0, rows, 1.0)[:, None]
    cols = np.max(np.abs(scaled), axis=0)
    if not (np.all(rows > 0) and np.all(cols > 0) and np.all(np.isfinite(A))):
        raise ValueError("the map is singular (a zero row or column) and has no inverse")
    cond = float(np.linalg.cond(scaled / cols[None, :]))
    if not np.isfinite(cond) or cond > 1e14:
        raise ValueError(
            f"the map is singular (condition number {cond:.3g} after scaling its rows and columns) and has no inverse"
        )


def _json_value(value: Any) -> Any:
    """``json.dumps``'s fallback for :meth:`AffineMap.save`'s metadata: numpy scalars and arrays as Python values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(
        f"AffineMap.meta must hold JSON values (str, numbers, bools, None, lists, dicts); got a {type(value).__name__}"
    )
