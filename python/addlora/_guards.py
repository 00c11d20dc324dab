"""torch >= 2: the checker behind the eager path's cache of tensor descriptions (python/fast_path.cc).

``factory()`` returns ``make(batched, *tensors) -> check`` where ``check(*same_count_of_tensors)``
is True only when every tensor has the same Python type, dtype, device, dispatch keys,
requires_grad, sizes and strides as the ones ``make`` saw (torch._C._dynamo.guards.TensorGuards,
the C++ check torch.compile itself uses) -- except dim 0's size of the tensors whose bit is set
in ``batched`` (the batch), which may be anything when ``make.dynamic_rows`` is True.  It is a
private torch API, so it is used only after a self-test of exactly those semantics passes on
this torch (first with the batch left open, then without); otherwise ``factory()`` returns None
and every call describes its tensors afresh.
"""


def _make_with(TensorGuards, dynamic_rows):
    def make(batched, *tensors):
        sizes = []
        for k, t in enumerate(tensors):
            s = list(t.shape)
            if dynamic_rows and (batched >> k) & 1 and s:
                s[0] = None  # any size; the stride is still checked
            sizes.append(s)
        return TensorGuards(*tensors, dynamic_dims_sizes=sizes,
                            dynamic_dims_strides=[list(t.stride()) for t in tensors]).check
    make.dynamic_rows = dynamic_rows
    return make


def _self_test(torch, make):
    a = torch.zeros(3, 4, dtype=torch.float16)
    i = torch.zeros(3, dtype=torch.int32)
    check = make(0, a, i)
    same = [check(a, i), check(torch.ones(3, 4, dtype=torch.float16), torch.ones(3, dtype=torch.int32)),
            check(torch.zeros(4, 4, dtype=torch.float16)[1:], i)]          # another offset: data_ptr says
    differ = [check(a.t().contiguous().t(), i),                            # strides
              check(a[:, :3], i), check(torch.zeros(2, 4, dtype=torch.float16), i),   # sizes
              check(torch.zeros(3, 8, dtype=torch.float16)[:, ::2], i),    # strides only
              check(a.float(), i), check(a.to(torch.bfloat16), i), check(a, i.long()),  # dtypes
              check(a.clone().requires_grad_(True), i),                    # requires_grad
              check(a.to("meta"), i),                                      # device
              check(torch.nn.Parameter(a, requires_grad=False), i)]        # Python type
    if make.dynamic_rows:  # a's rows open: any row count, nothing else
        rows = make(0b01, a, i)
        same += [rows(torch.zeros(5, 4, dtype=torch.float16), i), rows(torch.zeros(1, 4, dtype=torch.float16), i)]
        differ += [rows(torch.zeros(5, 3, dtype=torch.float16), i),          # another dim is still checked
                   rows(torch.zeros(5, 8, dtype=torch.float16)[:, ::2], i),  # and the strides
                   rows(torch.zeros(5, 4, dtype=torch.float32), i),          # and the dtype
                   rows(a, torch.zeros(4, dtype=torch.int32))]               # i's rows were not opened
    try:
        check(a)                                                          # wrong count must not pass
        return False
    except Exception:
        pass
    return all(v is True for v in same) and all(v is False for v in differ)


def factory():
    try:
        import torch
        from torch._C._dynamo.guards import TensorGuards
    except Exception:  # no such API (torch 1.x): no cache
        return None
    for dynamic_rows in (True, False):
        try:
            make = _make_with(TensorGuards, dynamic_rows)
            if _self_test(torch, make):
                return make
        except Exception:  # another signature or semantics: try the next form, else no cache
            pass
    return None
