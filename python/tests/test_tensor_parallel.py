"""Tensor parallel over torch.distributed (gloo on 127.0.0.1, a free port, one library thread per
rank): examples/python/tensor_parallel_lora.py launches the ranks itself and each rank checks the
column-parallel and row-parallel LoRA'd linears against the unsharded call within the contract.
Bounded in time twice: the launcher kills its ranks after --timeout, and subprocess.run here
stops the launcher a little later."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "tensor_parallel_lora.py")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed without gloo")
@pytest.mark.parametrize("world_size", [2, 4])
def test_column_and_row_parallel_equal_unsharded(world_size):
    r = subprocess.run([sys.executable, EXAMPLE, "--world-size", str(world_size), "--timeout", "120"],
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{world_size} ranks OK" in r.stdout
    assert "column-parallel ok" in r.stdout and "row-parallel ok" in r.stdout
