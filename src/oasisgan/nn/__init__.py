"""The OASIS networks as pure modules: no I/O, no device calls."""
from .discriminator import Discriminator
from .generator import Generator
from .spade import SPADE

__all__ = ["Generator", "Discriminator", "SPADE"]
