"""Shared fixtures: small synthetic images with known answers, and the shared VOC folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dipseg.labels import IGNORE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Tests run beside other processes on 2 cores; one torch thread avoids OpenMP contention.
    torch.set_num_threads(1)


def voc_root() -> Path | None:
    """VOC folder from DIPSEG_VOC_ROOT or ../shared/data/voc2012, or None."""
    env = os.environ.get("DIPSEG_VOC_ROOT")
    root = Path(env) if env else REPO.parent / "shared" / "data" / "voc2012"
    return root if (root / "ImageSets" / "Segmentation").is_dir() else None


@pytest.fixture
def voc() -> Path:
    root = voc_root()
    if root is None:
        pytest.skip("Pascal VOC not found: set DIPSEG_VOC_ROOT or place it at ../shared/data/voc2012")
    return root


def three_regions(size: int = 48, noise: float = 12.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image with three flat coloured regions plus noise, and its ground truth (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size), np.int64)
    gt[:, size // 2 :] = 1
    yy, xx = np.mgrid[:size, :size]
    gt[(yy - size * 0.3) ** 2 + (xx - size * 0.3) ** 2 < (size * 0.18) ** 2] = 2
    colours = np.array([[200, 60, 50], [40, 70, 190], [230, 220, 60]], float)
    img = colours[gt] + rng.normal(0, noise, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), gt


def seeds_from(gt: np.ndarray, per_class: int = 4, seed: int = 0) -> np.ndarray:
    from dipseg.labels import sample_uniform

    return sample_uniform(gt, per_class, seed=seed)


@pytest.fixture
def regions():
    return three_regions()


__all__ = ["IGNORE", "three_regions", "seeds_from", "voc_root"]
