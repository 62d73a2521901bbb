"""Where and on how many threads a fit runs."""

from __future__ import annotations

import contextlib
import threading

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU.

    Raises
    ------
    ValueError
        Unknown device name, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but CUDA is not available here; use --device cpu or auto")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (None leaves them alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


_blas = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextlib.contextmanager
def single_threaded_blas():
    """Run NumPy's and SciPy's BLAS on the calling thread for the duration (process-wide).

    A fit divides its cores itself: torch's threads train the network while one more
    thread prepares the full-resolution stage (colour mixtures, the random walk). OpenBLAS
    keeps a pool of its own, one thread per core that spins between calls; during a fit
    those threads took the cores from torch's, and a VOC fit at two threads took 0.72 s
    instead of 0.52 s, with identical results (docs/performance.md). BLAS has one pool per
    process, so overlapping fits (the web server's workers) share the limit: the last to
    finish restores the original one. Without ``threadpoolctl`` (scikit-learn's
    dependency) nothing changes.
    """
    global _blas_users, _blas_limiter
    with _blas:
        if _blas_users == 0:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - a dependency; only speed depends on it
                _blas_limiter = None
            else:
                _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
