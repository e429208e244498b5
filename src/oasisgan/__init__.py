"""oasisgan: OASIS semantic image synthesis (Sushko et al., ICLR 2021), faithful and fast.

The names below load on first use, so that `import oasisgan` (and `oasis --help`) does not import
torch."""
__version__ = "0.1.0"

_LAZY = {"OASISConfig": "config", "PRESETS": "config", "preset": "config", "OASISModel": "loading.model",
         "load": "loading.model", "SPADE": "nn", "Discriminator": "nn", "Generator": "nn",
         "from_pretrained": "loading.pretrained"}

__all__ = list(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'oasisgan' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
