import pytest
import torch

from dipseg.dip.device import resolve_device, torch_threads


def test_resolve_device():
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_torch_threads_are_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_a_fit_runs_blas_on_its_own_threads_and_restores_the_pools():
    """OpenBLAS's spinning pool took the cores a fit divides between torch and its stage
    thread; during a fit BLAS is single-threaded, overlapping fits share the limit, and the
    pools are given back once the last one ends."""

    import numpy as np

    from dipseg.dip.config import FitConfig, NetworkConfig
    from dipseg.dip.device import single_threaded_blas
    from dipseg.dip.fit import fit
    from dipseg.labels import IGNORE
    from threadpoolctl import threadpool_limits

    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 200
    lab = np.full((16, 16), IGNORE)
    lab[8, 2], lab[8, 13] = 0, 1
    seen = []

    def run():
        fit(img, lab, NetworkConfig((4, 4), (4, 4), (2, 2)), FitConfig(iterations=3, working_size=16),
            threads=2, callback=lambda p: seen.append(set(_blas_threads())) or True)

    run()  # every BLAS library a fit uses is loaded now
    with threadpool_limits(limits=2, user_api="blas"):  # a known starting point on any machine
        before = _blas_threads()
        assert before and max(before) == 2
        first, second = single_threaded_blas(), single_threaded_blas()
        first.__enter__()
        second.__enter__()
        assert set(_blas_threads()) == {1}
        first.__exit__(None, None, None)
        assert set(_blas_threads()) == {1}  # the other fit still runs
        second.__exit__(None, None, None)
        assert _blas_threads() == before

        seen.clear()
        run()
        assert seen and all(s == {1} for s in seen)
        assert _blas_threads() == before
