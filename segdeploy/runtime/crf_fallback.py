"""The dense CRF's mean field in numpy alone: where `pydensecrf2` (C++) is not installed.

It follows Krähenbühl's densecrf step by step so that the two agree (tests compare them on a
real slice): Gaussian filtering on the permutohedral lattice of Adams, Baek & Davis
(Eurographics 2010) (features elevated onto the d-dimensional lattice, each pixel splatted
to the d+1 vertices of its simplex with barycentric weights, a [1/2, 1, 1/2] blur along the
d+1 lattice directions, sliced back with densecrf's alpha), symmetric normalisation by the
filtered ones, Potts compatibility, and Q = softmax(-unary + sum_k w_k K_k Q) per iteration.
The lattice is built once per kernel; an iteration is then bincounts and gathers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Lattice:
    """A permutohedral lattice over N points: where each point splats and with what weight,
    and each vertex's neighbours along the d+1 blur directions (-1: none)."""

    d: int
    vertices: int
    offsets: np.ndarray  # N x (d+1) vertex index of each point's simplex corners
    weights: np.ndarray  # N x (d+1) barycentric weights
    neighbours: np.ndarray  # (d+1) x 2 x M

    @classmethod
    def build(cls, feats: np.ndarray) -> Lattice:
        """Lattice of d x N float32 features (already divided by their widths)."""
        d, n = feats.shape
        f = feats.T.astype(np.float32)
        scale = (np.float32(np.sqrt(2.0 / 3.0) * (d + 1))
                 / np.sqrt(((np.arange(d) + 1) * (np.arange(d) + 2)).astype(np.float32)))
        cf = f * scale.astype(np.float32)
        # elevate: e[j] = sum_{i>=j} cf_i - j * cf_{j-1}, e[0] = sum cf
        suffix = np.cumsum(cf[:, ::-1], axis=1)[:, ::-1]  # suffix[:, i] = sum_{k>=i} cf_k
        elevated = np.empty((n, d + 1), np.float32)
        elevated[:, 0] = suffix[:, 0]
        for j in range(1, d + 1):
            after = suffix[:, j] if j < d else np.float32(0)
            elevated[:, j] = after - j * cf[:, j - 1]
        # the nearest 0-coloured lattice point, then the simplex the point lies in
        rd = _round_half_away(elevated / np.float32(d + 1))
        rem0 = (rd * (d + 1)).astype(np.int32)
        total = rd.sum(axis=1).astype(np.int32)
        diff = elevated - rem0
        greater = diff[:, None, :] > diff[:, :, None]  # [n, i, j]: diff_j > diff_i
        equal_before = (diff[:, None, :] == diff[:, :, None]) & np.tri(d + 1, k=-1, dtype=bool)
        rank = (greater.sum(axis=2) + equal_before.sum(axis=2)).astype(np.int32) + total[:, None]
        low, high = rank < 0, rank > d
        rank[low] += d + 1
        rem0[low] += d + 1
        rank[high] -= d + 1
        rem0[high] -= d + 1
        bary = np.zeros((n, d + 2), np.float32)
        v = (elevated - rem0) / np.float32(d + 1)
        rows = np.arange(n)[:, None]
        bary[rows, d - rank] += v  # ranks are a permutation per row: no repeated index
        bary[rows, d - rank + 1] -= v
        bary[:, 0] += 1.0 + bary[:, d + 1]
        # keys (first d coordinates) of the d+1 vertices of each point's simplex
        keys = np.empty((n, d + 1, d), np.int32)
        for r in range(d + 1):
            key = rem0[:, :d] + r
            key -= np.where(rank[:, :d] > d - r, d + 1, 0).astype(np.int32)
            keys[:, r] = key
        codes, pack = _packer(keys.reshape(-1, d), d)
        unique, inverse = np.unique(codes, return_inverse=True)
        offsets = inverse.reshape(n, d + 1)
        ukeys = _unpack(unique, pack, d)
        neighbours = np.full((d + 1, 2, len(unique) + 1), -1, np.int64)  # [0]: the empty row
        for j in range(d + 1):
            for side, sign in enumerate((-1, 1)):
                nk = ukeys + sign
                if j < d:
                    nk[:, j] = ukeys[:, j] - sign * d
                neighbours[j, side, 1:] = _lookup(unique, nk, pack)
        return cls(d, len(unique), offsets, bary[:, :d + 1], neighbours)

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Gaussian-filter K x N values (the point itself included): splat, blur, slice.
        The lattice is held vertex-major ((M + 1) x K, row 0 "no neighbour") so that each
        gather fetches whole rows."""
        k, n = values.shape
        grid = np.zeros((self.vertices + 1, k), np.float32)
        flat = self.offsets.ravel()
        weighted = values[:, :, None] * self.weights[None]  # K x N x (d+1)
        for c in range(k):
            grid[1:, c] = np.bincount(flat, weights=weighted[c].ravel(),
                                      minlength=self.vertices)
        for j in range(self.d + 1):
            n1, n2 = self.neighbours[j] + 1
            blurred = grid[n1]
            blurred += grid[n2]
            blurred *= 0.5
            blurred += grid
            blurred[0] = 0.0
            grid = blurred
        out = np.zeros((n, k), np.float32)
        for j in range(self.d + 1):
            out += grid[self.offsets[:, j] + 1] * self.weights[:, j:j + 1]
        out *= np.float32(1.0 / (1.0 + 2.0 ** (-self.d)))
        return np.ascontiguousarray(out.T)


def mean_field(unary: np.ndarray, kernels: list[tuple[np.ndarray, float]],
               iterations: int) -> np.ndarray:
    """K x N unary energies, [(d x N features, Potts weight)] -> K x N marginals (float32)."""
    k, n = unary.shape
    prepared = []
    for feats, weight in kernels:
        if weight == 0:
            continue
        lattice = Lattice.build(feats)
        norm = 1.0 / np.sqrt(lattice.filter(np.ones((1, n), np.float32))[0] + 1e-20)
        prepared.append((lattice, norm.astype(np.float32), np.float32(weight)))
    q = _softmax(-unary)
    for _ in range(int(iterations)):
        energy = -unary.astype(np.float32)
        for lattice, norm, weight in prepared:
            energy += weight * lattice.filter(q * norm) * norm
        q = _softmax(energy)
    return q


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's round(): halves away from zero (numpy rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _packer(keys: np.ndarray, d: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Integer keys (rows) -> one int64 code each, with room for neighbours (+-d+1)."""
    lo = keys.min(axis=0).astype(np.int64) - (d + 2)
    span = keys.max(axis=0).astype(np.int64) - lo + (d + 3)
    if float(np.prod(span.astype(np.float64))) >= 2.0 ** 62:
        raise ValueError("CRF lattice too large to index (features too finely scaled)")
    radix = np.concatenate([np.cumprod(span[::-1])[::-1][1:], [1]]).astype(np.int64)
    return ((keys.astype(np.int64) - lo) * radix).sum(axis=1), (lo, radix)


def _unpack(codes: np.ndarray, pack: tuple[np.ndarray, np.ndarray], d: int) -> np.ndarray:
    lo, radix = pack
    out = np.empty((len(codes), d), np.int64)
    rest = codes.copy()
    for i in range(d):
        out[:, i] = rest // radix[i]
        rest -= out[:, i] * radix[i]
    return out + lo


def _lookup(unique: np.ndarray, keys: np.ndarray, pack: tuple[np.ndarray, np.ndarray]
            ) -> np.ndarray:
    lo, radix = pack
    codes = ((keys - lo) * radix).sum(axis=1)
    at = np.searchsorted(unique, codes)
    at = np.minimum(at, len(unique) - 1)
    return np.where(unique[at] == codes, at, -1)
