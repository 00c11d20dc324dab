"""info(), thread count, bitwise determinism across thread counts, GIL release, concurrency."""
import sys
import threading
import time

import numpy as np
import pytest

import addlora
from lora_reference import check, reference
from problems import make_problem


@pytest.fixture
def restore_threads():
    n = addlora.num_threads()
    yield
    addlora.set_num_threads(n)


def test_info():
    info = addlora.info()
    assert info["version"] == addlora.__version__ == "0.1.0"
    assert isinstance(info["simd_target"], str) and info["simd_target"]
    assert info["num_threads"] == addlora.num_threads() >= 1
    assert info["dtypes"] == ["float16", "bfloat16", "float32"]
    assert info["index_dtypes"] == ["int32", "int64"]
    assert info["precisions"] == ["exact", "fast"] and info["weight_formats"] == ["nd", "nz"]


def test_set_num_threads(restore_threads):
    addlora.set_num_threads(2)
    assert addlora.num_threads() == 2 and addlora.info()["num_threads"] == 2
    addlora.set_num_threads(1)
    assert addlora.info()["num_threads"] == 1
    with pytest.raises(ValueError, match=r"set_num_threads needs n >= 1 \(got 0\)"):
        addlora.set_num_threads(0)
    with pytest.raises(TypeError):
        addlora.set_num_threads(1.5)
    assert addlora.num_threads() == 1


def test_results_are_bitwise_identical_across_thread_counts(rng, restore_threads):
    p = make_problem(rng, "numpy", "float16", B=64, H1=256, R=16, H2=128, H3=160, W=4, L=1)
    results = []
    for n in (1, 2, 3):
        addlora.set_num_threads(n)
        results.append(addlora.npu_batch_gather_matmul(**p, scale=0.5, y_offset=16))
    assert all(np.array_equal(results[0].view(np.uint16), r.view(np.uint16)) for r in results[1:])
    check(results[0], p["y"], reference(**p, scale=0.5, y_offset=16))


def test_concurrent_calls_from_python_threads(rng):
    problems = [make_problem(rng, "numpy", "float32", B=32, H1=64, R=8, H2=48, H3=48) for _ in range(4)]
    outs = [None] * len(problems)

    def work(k):
        for _ in range(5):
            outs[k] = addlora.npu_batch_gather_matmul(**problems[k], scale=0.5)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, p in enumerate(problems):
        expected = addlora.npu_batch_gather_matmul(**p, scale=0.5)
        assert np.array_equal(outs[k], expected)


def _ticks_during_calls(rng, api, B):
    """Two calls with B rows on a worker thread while this thread ticks: returns the tick times
    and the longest call's (start, end)."""
    p = make_problem(rng, "numpy", "float32", B=B, H1=4096, R=64, H2=4096, H3=4096, W=2, L=1)
    # The same work as two slices (left and right column halves) of one multi-slice call.
    halves = [dict(weight_b=p["weight_b"][:, :, :2048], weight_a=p["weight_a"]),
              dict(weight_b=p["weight_b"][:, :, 2048:], weight_a=p["weight_a"], y_offset=2048)]
    spans = []

    def calls():
        for _ in range(2):
            start = time.perf_counter()
            if api == "add_lora":
                addlora.add_lora(**p)
            else:
                addlora.add_lora_multi(p["y"], p["x"], p["indices"], halves)
            spans.append((start, time.perf_counter()))

    t = threading.Thread(target=calls)
    ticks = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        t.start()
        while t.is_alive():
            ticks.append(time.perf_counter())
            time.sleep(2e-4)  # tick about every 0.3 ms without competing for the cores
        t.join()
    finally:
        sys.setswitchinterval(interval)
    return np.array(ticks), max(spans, key=lambda s: s[1] - s[0])


@pytest.mark.parametrize("api", ["add_lora", "add_lora_multi"])
def test_gil_is_released_while_computing(rng, restore_threads, api):
    # While a thread is inside the library, the main thread must keep running Python code.
    # Holding the GIL, the worker would let the main thread run only between its calls and
    # around their edges (switch intervals, scheduling delays on a busy machine): so count the
    # main thread's ticks in the middle half of calls long enough (> 40 ms) to have a middle.
    # A call's length varies with the machine and its load (2048 rows once took only 36 ms in
    # CI), so the rows double until a call is long enough.
    addlora.set_num_threads(1)
    for B in (2048, 4096, 8192):
        ticks, (a, b) = _ticks_during_calls(rng, api, B)
        if b - a > 0.04:
            break
    assert b - a > 0.04, f"problem too small to tell ({(b - a) * 1e3:.1f} ms at B={B})"
    inside = int(((ticks > a + 0.25 * (b - a)) & (ticks < b - 0.25 * (b - a))).sum())
    # Released: a tick every ~0.3 ms (fewer on a loaded machine); held: none at all.
    assert inside >= 5, (inside, b - a)
