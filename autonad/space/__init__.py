"""Search spaces and the architecture encoding (SPEC section 3)."""

from autonad.space.arch import (
    BLOCK_OPS,
    EDGE_NAMES,
    EDGE_OPS,
    Arch,
    BlockArch,
    DecoderArch,
    HeadsArch,
    StageArch,
)
from autonad.space.searchspace import DecoderSpace, Gene, SearchSpace, StageSpace

__all__ = [
    "BLOCK_OPS", "EDGE_NAMES", "EDGE_OPS", "Arch", "BlockArch", "DecoderArch", "DecoderSpace",
    "Gene", "HeadsArch", "SearchSpace", "StageArch", "StageSpace",
]  # fmt: skip
