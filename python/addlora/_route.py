"""Whether torch.compile is tracing the caller: then the public functions call the registered
torch.ops.addlora.* operators (which the compiler can put in its graph) instead of the C++ fast
path.  ``compiling()`` costs one Python call in eager mode: it starts as a probe and becomes
``torch.compiler.is_compiling`` (torch >= 2.4, operators registered) or a constant False once
torch is imported.

``install_builtins`` makes the eager entry points builtins of _core (python/fast_path.cc:
make_entry) where that is safe: they skip the Python frame (0.2-0.5 µs a call) and hand
anything they do not take to the Python functions, unchanged."""
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


def _torch_major():
    """torch's major version, None when torch is not installed (2: installed, version unknown)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None:
            version = torch.__version__
        else:
            from importlib.metadata import PackageNotFoundError, version as _version
            try:
                version = _version("torch")
            except PackageNotFoundError:
                return None
        return int(str(version).split(".")[0])
    except Exception:
        return 2


def _substitutable():
    """torch is imported, its operators are registered and torch.compile can trace a builtin as a
    Python function of ours (torch.compiler.substitute_in_graph, torch >= 2.5)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if compiling is _probe:
        setup()
    return compiling is not _never and hasattr(getattr(torch, "compiler", None), "substitute_in_graph")


def install_builtins(namespace, names, first_kind):
    """Replaces the Python functions namespace[name] by builtins of _core (kinds first_kind, ...)
    when nothing can trace them (torch not installed, or torch 1.x) or torch.compile substitutes
    each Python function for its builtin while tracing (so compiled graphs still get the
    torch.ops.addlora operators).  Otherwise (torch 2.x not yet imported, or without
    substitute_in_graph) they stay Python functions.  Returns {name: Python function}."""
    import inspect
    from . import _core
    python_fns = {name: namespace[name] for name in names}
    major = _torch_major()
    substitute = major is not None and major >= 2 and _substitutable()
    if not (major is None or major < 2 or substitute):
        return python_fns
    for kind, name in enumerate(names, first_kind):
        fn = python_fns[name]
        doc = f"{name}{str(inspect.signature(fn)).replace('(', '($module, ', 1)}\n--\n\n{inspect.getdoc(fn)}"
        entry = _core.make_entry(kind, fn, name, doc)
        if substitute:
            try:
                sys.modules["torch"].compiler.substitute_in_graph(entry)(fn)
            except Exception:  # this torch refuses the substitution: the Python function stays
                continue
        namespace[name] = entry
    return python_fns
