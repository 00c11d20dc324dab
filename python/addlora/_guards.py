"""torch >= 2: the checker behind the eager path's cache of tensor descriptions (python/fast_path.cc).

``factory()`` returns ``make(*tensors) -> check`` where ``check(*same_count_of_tensors)`` is True
only when every tensor has the same Python type, dtype, device, dispatch keys, requires_grad,
sizes and strides as the ones ``make`` saw (torch._C._dynamo.guards.TensorGuards, the C++ check
torch.compile itself uses).  It is a private torch API, so it is used only after a self-test of
exactly those semantics passes on this torch; otherwise ``factory()`` returns None and every
call describes its tensors afresh.
"""


def _make_with(TensorGuards):
    def make(*tensors):
        return TensorGuards(*tensors, dynamic_dims_sizes=[list(t.shape) for t in tensors],
                            dynamic_dims_strides=[list(t.stride()) for t in tensors]).check
    return make


def _self_test(torch, make):
    a = torch.zeros(3, 4, dtype=torch.float16)
    i = torch.zeros(3, dtype=torch.int32)
    check = make(a, i)
    same = [check(a, i), check(torch.ones(3, 4, dtype=torch.float16), torch.ones(3, dtype=torch.int32)),
            check(torch.zeros(4, 4, dtype=torch.float16)[1:], i)]          # another offset: data_ptr says
    differ = [check(a.t().contiguous().t(), i),                            # strides
              check(a[:, :3], i), check(torch.zeros(2, 4, dtype=torch.float16), i),   # sizes
              check(torch.zeros(3, 8, dtype=torch.float16)[:, ::2], i),    # strides only
              check(a.float(), i), check(a.to(torch.bfloat16), i), check(a, i.long()),  # dtypes
              check(a.clone().requires_grad_(True), i),                    # requires_grad
              check(a.to("meta"), i),                                      # device
              check(torch.nn.Parameter(a, requires_grad=False), i)]        # Python type
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
        make = _make_with(TensorGuards)
        return make if _self_test(torch, make) else None
    except Exception:  # no such API (torch 1.x) or another signature: no cache
        return None
