"""Autograd for add_lora / npu_batch_gather_matmul (torch tensors; imported only when needed).

Forward is the library call.  Backward, for rows b with adapter i = indices[b] in [0, W) and the
written columns c = y_offset .. y_offset + S, with s = scale (* scales[i]) and r < ranks[i]:

    z[b]          = x[b] @ A[i].T                      (x[b][:R] without weight_a)
    grad_y        = grad_out                            (out = y + delta: identity)
    grad_z[b]     = s * grad_out[b, c] @ B[i, :S]
    grad_B[i, :S] += s * grad_out[b, c].T (outer) z[b]
    grad_A[i]     += grad_z[b].T (outer) x[b]
    grad_x[b]     = grad_z[b] @ A[i]                   (grad_z[b] in x[b][:R] without weight_a)

computed per adapter in fp32 (fp64 for nothing: the inputs are at most fp32) with torch ops and
returned in each input's dtype.  scale, indices, ranks and scales are not differentiable.
"""
import torch


def _rank(ranks, w, R):
    if ranks is None:
        return R
    return max(0, min(int(ranks[w]), R))


def _scale(scale, scales, w):
    return scale if scales is None else scale * float(scales[w])


def lora_backward(g, x, weight_b, weight_a, indices, layer_idx, scale, y_offset, S, ranks, scales, needs):
    """Gradients (x, weight_b, weight_a) for grad_out g; None where not needed."""
    need_x, need_b, need_a = needs
    W, R = weight_b.shape[0], weight_b.shape[3]
    g32 = g[:, y_offset:y_offset + S].float()
    x32 = x.float()
    B32 = weight_b[:, layer_idx, :S].float()                         # [W, S, R]
    A32 = None if weight_a is None else weight_a[:, layer_idx].float()  # [W, R, H1]
    gx = torch.zeros_like(x32) if need_x else None
    gb = torch.zeros(weight_b.shape, dtype=torch.float32) if need_b else None
    ga = torch.zeros(weight_a.shape, dtype=torch.float32) if need_a else None
    idx = indices.long() if isinstance(indices, torch.Tensor) else torch.as_tensor(indices).long()
    for w in torch.unique(idx).tolist():
        if not 0 <= w < W:
            continue                                                  # no adapter: no gradient
        rows = (idx == w).nonzero().flatten()
        r = _rank(ranks, w, R)
        if r == 0 or S == 0:
            continue
        s = _scale(scale, scales, w)
        X = x32[rows]                                                 # [n, H1]
        G = g32[rows]                                                 # [n, S]
        Bw = B32[w, :, :r]                                            # [S, r]
        Z = X[:, :r] if A32 is None else X @ A32[w, :r].t()           # [n, r]
        gZ = s * (G @ Bw)                                             # [n, r]
        if need_b:
            gb[w, layer_idx, :S, :r] += s * (G.t() @ Z)
        if need_a:
            ga[w, layer_idx, :r] += gZ.t() @ X
        if need_x:
            if A32 is None:
                gx[rows, :r] += gZ
            else:
                gx[rows] += gZ @ A32[w, :r]
    cast = lambda t, like: None if t is None else t.to(like.dtype)  # noqa: E731
    return cast(gx, x), cast(gb, weight_b), cast(ga, weight_a)


class AddLoraFunction(torch.autograd.Function):
    """out = y + delta(x, weight_b, weight_a); differentiable in y, x, weight_b, weight_a."""

    @staticmethod
    def forward(ctx, y, x, weight_b, weight_a, run, indices, layer_idx, scale, y_offset, S, ranks, scales):
        # `run` computes the result from detached inputs (the library call, no autograd).
        out = run()
        ctx.save_for_backward(x, weight_b, weight_a, indices)
        ctx.attrs = (layer_idx, scale, y_offset, S, ranks, scales)
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight_b, weight_a, indices = ctx.saved_tensors
        layer_idx, scale, y_offset, S, ranks, scales = ctx.attrs
        needs = ctx.needs_input_grad
        gx, gb, ga = lora_backward(g, x, weight_b, weight_a, indices, layer_idx, scale, y_offset, S, ranks,
                                   scales, (needs[1], needs[2], needs[3] and weight_a is not None))
        gy = g if needs[0] else None
        return gy, gx, gb, ga, None, None, None, None, None, None, None, None
