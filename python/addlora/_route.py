"""Whether torch.compile is tracing the caller: then the public functions call the registered
torch.ops.addlora.* operators (which the compiler can put in its graph) instead of the C++ fast
path.  ``compiling()`` costs one Python call in eager mode: it starts as a probe and becomes
``torch.compiler.is_compiling`` (torch >= 2.4, operators registered) or a constant False once
torch is imported."""
import sys


def _never():
    return False


def _probe():
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    setup()
    return compiling()


compiling = _probe


def setup():
    """Registers torch.ops.addlora.* (where supported) and fixes compiling()."""
    global compiling
    from . import _core, _guards, _ops
    _core.set_guard_factory(_guards.factory())  # None under torch 1.x: no description cache
    if _ops.register():
        import torch
        compiling = torch.compiler.is_compiling
    else:
        compiling = _never
    return compiling is not _never
