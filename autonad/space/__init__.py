"""Search spaces and the architecture encoding (SPEC section 3)."""

from autonad.space.arch import EDGE_NAMES, Arch, BlockArch, DecoderArch, HeadsArch, StageArch
from autonad.space.operators import (
    BlockOperator,
    EdgeOperator,
    block_operator,
    block_operators,
    edge_operator,
    edge_operators,
    parse_choice,
)
from autonad.space.searchspace import DecoderSpace, Gene, SearchSpace, StageSpace

__all__ = [
    "EDGE_NAMES", "Arch", "BlockArch", "BlockOperator", "DecoderArch", "DecoderSpace", "EdgeOperator", "Gene",
    "HeadsArch", "SearchSpace", "StageArch", "StageSpace", "block_operator", "block_operators", "edge_operator",
    "edge_operators", "parse_choice",
]  # fmt: skip
