"""torch.ops.addlora.*: the operators registered with torch.library (torch >= 2.4).

Schemas (mutated arguments annotated; in-place operators return nothing):

    addlora::add_lora(Tensor y, Tensor x, Tensor weight_b, Tensor indices, Tensor? weight_a,
                      int layer_idx, float scale, int y_offset, int y_slice_size) -> Tensor
    addlora::add_lora_(Tensor(a!) y, <same>) -> ()
    addlora::bgmv_shrink(Tensor inputs, Tensor lora_a_weights, Tensor(a!) output_tensor,
                         Tensor lora_indices_tensor, float scaling) -> ()
    addlora::bgmv_expand(Tensor inputs, Tensor lora_b_weights, Tensor(a!) output_tensor,
                         Tensor lora_indices_tensor, bool add_inputs) -> ()
    addlora::bgmv_expand_slice(..., int slice_offset, int slice_size, bool add_inputs) -> ()
    addlora::sgmv_shrink / sgmv_expand / sgmv_expand_slice: vLLM's arguments, same pattern.
    addlora::shrink(Tensor x, Tensor weight_a, Tensor(a!) z, Tensor indices, int layer_idx, float scale,
                    bool accumulate, bool fast) -> ()
    addlora::expand(Tensor z, Tensor weight_b, Tensor(a!) out, Tensor indices, int layer_idx, float scale,
                    int y_offset, int y_slice_size, bool accumulate, bool fast) -> ()
    addlora::add_lora_multi(Tensor y, Tensor x, Tensor indices, Tensor[] weight_b, Tensor?[] weight_a,
                            float[] scale, int[] y_offset, int[] y_slice_size, int layer_idx, bool fast) -> Tensor
    addlora::add_lora_multi_(Tensor(a!) y, <same>) -> ()

Each has a CPU kernel (the library call), a fake kernel (shapes only) and add_lora an autograd
formula written with gathers (traceable, so compiled training works too).  The public functions
(addlora.add_lora, addlora.punica.*, ...) call these operators while torch.compile traces them
and the C++ fast path otherwise.
"""
import torch

from . import _core

_LIB = None

_ADD_LORA_ARGS = ("Tensor x, Tensor weight_b, Tensor indices, Tensor? weight_a, int layer_idx, float scale, "
                  "int y_offset, int y_slice_size")
_MULTI_ARGS = ("Tensor x, Tensor indices, Tensor[] weight_b, Tensor?[] weight_a, float[] scale, int[] y_offset, "
               "int[] y_slice_size, int layer_idx, bool fast")
_SEQ_ARGS = ("Tensor b_seq_start_loc, Tensor seq_len_tensor, Tensor lora_indices_tensor, int batches, "
             "int max_seq_length, int token_nums")

SCHEMAS = {
    "add_lora": f"add_lora(Tensor y, {_ADD_LORA_ARGS}) -> Tensor",
    "add_lora_": f"add_lora_(Tensor(a!) y, {_ADD_LORA_ARGS}) -> ()",
    "bgmv_shrink": "bgmv_shrink(Tensor inputs, Tensor lora_a_weights, Tensor(a!) output_tensor, "
                   "Tensor lora_indices_tensor, float scaling) -> ()",
    "bgmv_expand": "bgmv_expand(Tensor inputs, Tensor lora_b_weights, Tensor(a!) output_tensor, "
                   "Tensor lora_indices_tensor, bool add_inputs) -> ()",
    "bgmv_expand_slice": "bgmv_expand_slice(Tensor inputs, Tensor lora_b_weights, Tensor(a!) output_tensor, "
                         "Tensor lora_indices_tensor, int slice_offset, int slice_size, bool add_inputs) -> ()",
    "sgmv_shrink": f"sgmv_shrink(Tensor inputs, Tensor lora_a_weights, Tensor(a!) output_tensor, {_SEQ_ARGS}, "
                   "float scaling) -> ()",
    "sgmv_expand": f"sgmv_expand(Tensor inputs, Tensor lora_b_weights, Tensor(a!) output_tensor, {_SEQ_ARGS}, "
                   "bool add_inputs) -> ()",
    "sgmv_expand_slice": f"sgmv_expand_slice(Tensor inputs, Tensor lora_b_weights, Tensor(a!) output_tensor, "
                         f"{_SEQ_ARGS}, int slice_offset, int slice_size, bool add_inputs) -> ()",
    "shrink": "shrink(Tensor x, Tensor weight_a, Tensor(a!) z, Tensor indices, int layer_idx, float scale, "
              "bool accumulate, bool fast) -> ()",
    "expand": "expand(Tensor z, Tensor weight_b, Tensor(a!) out, Tensor indices, int layer_idx, float scale, "
              "int y_offset, int y_slice_size, bool accumulate, bool fast) -> ()",
    "add_lora_multi": f"add_lora_multi(Tensor y, {_MULTI_ARGS}) -> Tensor",
    "add_lora_multi_": f"add_lora_multi_(Tensor(a!) y, {_MULTI_ARGS}) -> ()",
}


def supported():
    lib = getattr(torch, "library", None)
    return lib is not None and hasattr(lib, "register_fake") and hasattr(lib, "register_autograd")


# ---- CPU kernels ------------------------------------------------------------------------------
def _add_lora_into(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size):
    r = _core.fast_run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)
    if r is NotImplemented:  # e.g. tensors that require grad seen below autograd: read them detached
        from . import _run
        r = _run(out if out is not None else torch.empty_like(y, memory_format=torch.contiguous_format), y, x,
                 weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, False)
    return r


def _add_lora_cpu(y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size):
    return _add_lora_into(None, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)


def _add_lora__cpu(y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size):
    _add_lora_into(y, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)


def _multi_into(out, y, x, indices, weight_b, weight_a, scale, y_offset, y_slice_size, layer_idx, fast):
    n = len(weight_b)
    if not (len(weight_a) == len(scale) == len(y_offset) == len(y_slice_size) == n):
        raise ValueError(f"AddLora: add_lora_multi needs one weight_a, scale, y_offset and y_slice_size per "
                         f"weight_b ({n} weight_b, {len(weight_a)} weight_a, {len(scale)} scale, "
                         f"{len(y_offset)} y_offset, {len(y_slice_size)} y_slice_size)")
    packed = [(weight_b[k], weight_a[k], float(scale[k]), int(y_offset[k]), int(y_slice_size[k]), None, None, None,
               None) for k in range(n)]
    _core.run_multi(out, y, x, indices, packed, layer_idx, False, fast)


def _add_lora_multi_cpu(y, x, indices, weight_b, weight_a, scale, y_offset, y_slice_size, layer_idx, fast):
    out = torch.empty_like(y, memory_format=torch.contiguous_format)
    _multi_into(out, y, x, indices, weight_b, weight_a, scale, y_offset, y_slice_size, layer_idx, fast)
    return out


def _add_lora_multi__cpu(y, x, indices, weight_b, weight_a, scale, y_offset, y_slice_size, layer_idx, fast):
    _multi_into(y, y, x, indices, weight_b, weight_a, scale, y_offset, y_slice_size, layer_idx, fast)


# ---- fake kernels -----------------------------------------------------------------------------
def _add_lora_fake(y, *args):
    return torch.empty_like(y, memory_format=torch.contiguous_format)


def _nothing(*args):
    return None


# ---- autograd of add_lora (gathers only: traceable) ---------------------------------------------
def _setup_context(ctx, inputs, output):
    y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size = inputs
    ctx.save_for_backward(x, weight_b, indices, weight_a)
    ctx.attrs = (layer_idx, scale, y_offset, y_slice_size)


def _backward(ctx, g):
    x, weight_b, indices, weight_a = ctx.saved_tensors
    layer_idx, scale, y_offset, y_slice_size = ctx.attrs
    W, H2 = weight_b.shape[0], weight_b.shape[2]
    S = H2 if y_slice_size == -1 else y_slice_size
    idx = indices.long()
    valid = ((idx >= 0) & (idx < W)).unsqueeze(1).float()             # [B, 1]
    ic = idx.clamp(0, W - 1)
    G = g[:, y_offset:y_offset + S].float() * valid                   # rows without adapter: 0
    Bsel = weight_b[:, layer_idx, :S].float()[ic]                     # [B, S, R]
    x32 = x.float()
    if weight_a is None:
        Z = x32
    else:
        Asel = weight_a[:, layer_idx].float()[ic]                     # [B, R, H1]
        Z = torch.einsum("brh,bh->br", Asel, x32)
    gZ = scale * torch.einsum("bs,bsr->br", G, Bsel)                  # [B, R]
    need = ctx.needs_input_grad
    gy = g if need[0] else None
    gx = gb = ga = None
    if need[1]:
        gx = (gZ if weight_a is None else torch.einsum("br,brh->bh", gZ, Asel)).to(x.dtype)
    if need[2]:
        gb = torch.zeros(weight_b.shape, dtype=torch.float32, device=weight_b.device)
        contrib = scale * torch.einsum("bs,br->bsr", G, Z)            # [B, S, R]
        layer = torch.zeros((W,) + tuple(contrib.shape[1:]), dtype=torch.float32, device=weight_b.device)
        layer = layer.index_add(0, ic, contrib)
        gb[:, layer_idx, :S] = layer
        gb = gb.to(weight_b.dtype)
    if need[4] and weight_a is not None:
        ga = torch.zeros(weight_a.shape, dtype=torch.float32, device=weight_a.device)
        contrib = torch.einsum("br,bh->brh", gZ, x32)                 # [B, R, H1]
        layer = torch.zeros((W,) + tuple(contrib.shape[1:]), dtype=torch.float32, device=weight_a.device)
        ga[:, layer_idx] = layer.index_add(0, ic, contrib)
        ga = ga.to(weight_a.dtype)
    return gy, gx, gb, None, ga, None, None, None, None


def register():
    """Defines torch.ops.addlora.* once.  Returns False where torch lacks the API (torch 1.x)."""
    global _LIB
    if _LIB is not None:
        return True
    if not supported():
        return False
    lib = torch.library.Library("addlora", "DEF")
    for schema in SCHEMAS.values():
        lib.define(schema)
    kernels = {
        "add_lora": _add_lora_cpu,
        "add_lora_": _add_lora__cpu,
        "bgmv_shrink": _core.bgmv_shrink,
        "bgmv_expand": _core.bgmv_expand,
        "bgmv_expand_slice": _core.bgmv_expand_slice,
        "sgmv_shrink": _core.sgmv_shrink,
        "sgmv_expand": _core.sgmv_expand,
        "sgmv_expand_slice": _core.sgmv_expand_slice,
        "shrink": _core.shrink,
        "expand": _core.expand,
        "add_lora_multi": _add_lora_multi_cpu,
        "add_lora_multi_": _add_lora_multi__cpu,
    }
    returns_tensor = ("add_lora", "add_lora_multi")
    for name, fn in kernels.items():
        lib.impl(name, fn, "CPU")
        torch.library.register_fake(f"addlora::{name}", _add_lora_fake if name in returns_tensor else _nothing, lib=lib)
    torch.library.register_autograd("addlora::add_lora", _backward, setup_context=_setup_context, lib=lib)
    _LIB = lib
    return True
