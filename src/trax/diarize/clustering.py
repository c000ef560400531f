"""Who is who across windows: spectral clustering of the local speakers' embeddings.

The cosine affinities of the embeddings are pruned to each one's nearest
neighbours (at least ``MIN_NEIGHBOURS``), symmetrised, and the number of
speakers is read from the largest gap between consecutive eigenvalues of the
graph Laplacian (within the requested count, minimum and maximum); k-means
on the matching eigenvectors gives the clusters. Clusters whose centroids are
closer than ``merge_similarity`` are one speaker.

Each window's local speakers are then mapped to distinct clusters by the best
total similarity to the centroids (a brute-force assignment: a window has at
most three local speakers), so two speakers of one window never become one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from trax.diarize.embeddings import LocalEmbedding
from trax.diarize.segmentation import FRAME_STEP_S, FRAMES, LocalActivity

MIN_NEIGHBOURS = 6
NEIGHBOUR_SHARE = 4
PRUNE_SHARE = 0.02
"""Each embedding keeps its affinity to this share of the others (its nearest), at least 6
(at least a quarter of them, and 2, when there are few)."""
MAX_CLUSTERED = 2000
"""The clustering itself runs on at most this many embeddings (the longest), for memory
and time on long recordings; the rest are assigned to the centroids."""
MAX_SPEAKERS = 20


@dataclass(frozen=True, slots=True)
class SpeakerCount:
    """What the user asked for: an exact count, or bounds (None: estimate freely)."""

    exact: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def bounds(self, n: int) -> tuple[int, int]:
        """The (minimum, maximum) number of clusters for ``n`` embeddings."""
        if self.exact is not None:
            return min(self.exact, n), min(self.exact, n)
        high = min(self.maximum or MAX_SPEAKERS, n)
        low = min(max(self.minimum or 1, 1), high)
        return low, high


def _kmeans(
    points: npt.NDArray[np.float64],
    k: int,
    seed: int = 0,
    restarts: int = 10,
    iterations: int = 100,
) -> npt.NDArray[np.intp]:
    """Lloyd's k-means with k-means++ starts; the labels of the best of ``restarts``."""
    rng = np.random.default_rng(seed)
    n = len(points)
    best: npt.NDArray[np.intp] = np.zeros(n, dtype=np.intp)
    best_inertia = np.inf
    for _ in range(restarts):
        centres = [points[rng.integers(n)]]
        for _ in range(1, k):
            distance = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
            total = distance.sum()
            pick = rng.choice(n, p=distance / total) if total > 0 else rng.integers(n)
            centres.append(points[pick])
        centroids = np.array(centres)
        labels = np.zeros(n, dtype=np.intp)
        for _ in range(iterations):
            distances = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
            new = distances.argmin(axis=1)
            if _ and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = points[labels == j]
                if len(members):
                    centroids[j] = members.mean(axis=0)
        inertia = float(((points - centroids[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def spectral_labels(vectors: npt.NDArray[np.float32], count: SpeakerCount) -> npt.NDArray[np.intp]:
    """A cluster label per (unit-length) vector; the number of clusters by eigengap."""
    n = len(vectors)
    low, high = count.bounds(n)
    if n <= 1 or high <= 1:
        return np.zeros(n, dtype=np.intp)
    affinity = np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T
    keep = max(int(np.ceil(PRUNE_SHARE * n)), min(MIN_NEIGHBOURS, max(2, n // NEIGHBOUR_SHARE)))
    if keep < n:
        threshold = np.partition(affinity, n - keep, axis=1)[:, n - keep][:, None]
        affinity = np.where(affinity >= threshold, affinity, 0.0)
    affinity = np.clip(0.5 * (affinity + affinity.T), 0.0, None)
    np.fill_diagonal(affinity, 0.0)
    laplacian = np.diag(affinity.sum(axis=1)) - affinity
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian)
    if low == high:
        k = low
    else:
        # gaps[i]: the gap after the (i + 1)-th eigenvalue. A tie (disconnected groups
        # beyond the maximum) goes to the larger count.
        gaps = np.diff(eigenvalues[: high + 1])[low - 1 : high]
        k = int(np.flatnonzero(gaps >= gaps.max() - 1e-9)[-1]) + low
    if k <= 1:
        return np.zeros(n, dtype=np.intp)
    return _kmeans(eigenvectors[:, :k], k)


def centroids_of(
    vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """Unit-length centroid per label (labels 0…k-1, each used)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    centres = np.stack([vectors[labels == j].mean(axis=0) for j in range(k)])
    norms = np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-8)
    return np.asarray(centres / norms, dtype=np.float32)


def merge_close(
    vectors: npt.NDArray[np.float32],
    labels: npt.NDArray[np.intp],
    similarity: float,
    minimum: int,
) -> npt.NDArray[np.intp]:
    """Merge the two closest clusters while their centroids are more similar than
    ``similarity`` (and more than ``minimum`` clusters remain); labels renumbered 0…k-1."""
    labels = labels.copy()
    while True:
        _, labels = np.unique(labels, return_inverse=True)
        k = int(labels.max()) + 1
        if k <= max(minimum, 1):
            return labels
        centres = centroids_of(vectors, labels)
        sims = centres @ centres.T
        np.fill_diagonal(sims, -np.inf)
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[a, b] < similarity:
            return labels
        labels[labels == b] = a


@cache
def _assignments(local: int, clusters: int) -> npt.NDArray[np.intp]:
    """Every injective map of ``local`` speakers to ``clusters`` (rows of cluster indices)."""
    return np.array(list(itertools.permutations(range(clusters), local)), dtype=np.intp)


def assign(
    similarities: npt.NDArray[np.float32],
) -> npt.NDArray[np.intp]:
    """The cluster of each local speaker (rows) that maximises total similarity, each
    cluster used at most once; -1 where there are more local speakers than clusters."""
    local, clusters = similarities.shape
    if local == 0 or clusters == 0:
        return np.full(local, -1, dtype=np.intp)
    if local > clusters:
        # Only the speakers with the strongest match get a cluster.
        order = np.argsort(-similarities.max(axis=1))[:clusters]
        out = np.full(local, -1, dtype=np.intp)
        out[order] = assign(similarities[order])
        return out
    options = _assignments(local, clusters)
    totals = similarities[np.arange(local)[None, :], options].sum(axis=1)
    return np.asarray(options[int(np.argmax(totals))], dtype=np.intp)


@dataclass(frozen=True, slots=True)
class Clustering:
    """The global cluster of every (window, local speaker) with an embedding."""

    mapping: dict[tuple[int, int], int]
    count: int
    centroids: npt.NDArray[np.float32]


def cluster(
    embeddings: Sequence[LocalEmbedding],
    count: SpeakerCount,
    merge_similarity: float,
) -> Clustering:
    """Cluster the embeddings, then map each window's local speakers to distinct clusters."""
    if not embeddings:
        return Clustering({}, 0, np.zeros((0, 0), dtype=np.float32))
    vectors = np.stack([e.vector for e in embeddings]).astype(np.float32)
    chosen = np.arange(len(embeddings))
    if len(chosen) > MAX_CLUSTERED:
        by_length = np.argsort([-e.active_s for e in embeddings], kind="stable")
        chosen = np.sort(by_length[:MAX_CLUSTERED])
    labels = spectral_labels(vectors[chosen], count)
    low, _ = count.bounds(len(chosen))
    if count.exact is None:
        labels = merge_close(vectors[chosen], labels, merge_similarity, low)
    centroids = centroids_of(vectors[chosen], labels)
    mapping: dict[tuple[int, int], int] = {}
    by_window: dict[int, list[int]] = {}
    for i, e in enumerate(embeddings):
        by_window.setdefault(e.window, []).append(i)
    for window, members in by_window.items():
        similarities = vectors[members] @ centroids.T
        for i, c in zip(members, assign(similarities), strict=True):
            if c >= 0:
                mapping[window, embeddings[i].speaker] = int(c)
    return Clustering(mapping, len(centroids), centroids)


def propagate(windows: Sequence[LocalActivity], clustering: Clustering) -> Clustering:
    """Map the local speakers without an embedding (windows that were not embedded,
    speakers too short to embed) by agreement with the mapped speakers of the windows
    that overlap theirs: the cluster whose mapped activity they coincide with most,
    each cluster at most once a window."""
    mapping = dict(clustering.mapping)
    firsts = [round(w.start_s / FRAME_STEP_S) for w in windows]
    for w, local in enumerate(windows):
        unmapped = [
            j
            for j in range(local.activity.shape[1])
            if (w, j) not in mapping and local.activity[:, j].any()
        ]
        if not unmapped or not clustering.count:
            continue
        votes = np.zeros((len(unmapped), clustering.count), dtype=np.float32)
        for v in range(max(0, w - 4), min(len(windows), w + 5)):
            shift = firsts[v] - firsts[w]
            if v == w or abs(shift) >= FRAMES:
                continue
            lo, hi = max(0, shift), min(FRAMES, FRAMES + shift)
            mine = local.activity[lo:hi]
            theirs = windows[v].activity[lo - shift : hi - shift]
            for j2 in range(theirs.shape[1]):
                c = clustering.mapping.get((v, j2))
                if c is not None:
                    votes[:, c] += (mine[:, unmapped] & theirs[:, [j2]]).sum(axis=0)
        used = {mapping[w, j] for j in range(local.activity.shape[1]) if (w, j) in mapping}
        for c in used:
            votes[:, c] = -1.0
        totals = np.maximum(local.activity[:, unmapped].sum(axis=0), 1)[:, None]
        for j, c in zip(unmapped, assign(votes / totals), strict=True):
            if c >= 0 and votes[unmapped.index(j), c] > 0:
                mapping[w, j] = int(c)
    return Clustering(mapping, clustering.count, clustering.centroids)
