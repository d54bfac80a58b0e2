"""Search spaces and the architecture encoding (SPEC section 3)."""

from autonad.space.arch import (
    EDGE_NAMES,
    EDGE_OPS,
    Arch,
    BlockArch,
    DecoderArch,
    HeadsArch,
    StageArch,
)
from autonad.space.operators import BlockOperator, block_operator, block_operators, parse_choice
from autonad.space.searchspace import DecoderSpace, Gene, SearchSpace, StageSpace

__all__ = [
    "EDGE_NAMES", "EDGE_OPS", "Arch", "BlockArch", "BlockOperator", "DecoderArch", "DecoderSpace",
    "Gene", "HeadsArch", "SearchSpace", "StageArch", "StageSpace", "block_operator", "block_operators",
    "parse_choice",
]  # fmt: skip
