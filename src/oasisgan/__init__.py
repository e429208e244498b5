"""oasisgan: OASIS semantic image synthesis (Sushko et al., ICLR 2021), faithful and fast."""
__version__ = "0.1.0"

from .config import OASISConfig, PRESETS, preset  # noqa: E402
from .model import OASISModel, load  # noqa: E402
from .nn import SPADE, Discriminator, Generator  # noqa: E402
from .pretrained import from_pretrained  # noqa: E402  (stdlib-only at import; torch work is lazy)

__all__ = ["OASISConfig", "PRESETS", "preset", "load", "OASISModel", "Generator", "Discriminator",
           "SPADE", "from_pretrained", "__version__"]
