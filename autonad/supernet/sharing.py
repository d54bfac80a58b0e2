"""Weight-sharing modes (paper IV-B and Table VII): which weight bank serves which op choice.

A block holds banks of Step I/output-projection weights and banks of Step II weights; a mode
is only the mapping from an operator choice (``transformer``, ``conv3``, ``conv5``, ``mlp``;
MFAM edges ``conv1x1`` ... ``dwsep3x3``) to a bank key:

| mode        | Step I (q/k/v) + output projection | Step II / edge convs                    |
|-------------|------------------------------------|-----------------------------------------|
| `cross`     | one bank for all operators         | one bank per type (kernels slice it)    |
| `entangled` | one bank per operator type         | one bank per type (kernels slice it)    |
| `classical` | one bank per candidate operator    | one bank per candidate (conv3 != conv5) |

Widths always share by slicing. LayerNorms and the MixFFN are not part of the operator and
are shared in every mode. Every MFAM edge op is a convolution (one type), so `entangled`
edges share like `cross` ones and `classical` gives each edge op its own weights.
"""

from __future__ import annotations

from typing import Literal

from autonad.space.operators import parse_choice

WeightSharing = Literal["cross", "entangled", "classical"]
WEIGHT_SHARING_MODES: tuple[str, ...] = ("cross", "entangled", "classical")


def op_type(choice: str) -> str:
    """Operator family of a block choice: ``conv3``/``conv5`` -> ``conv``."""
    return parse_choice(choice)[0].name


def projection_key(mode: str, choice: str) -> str:
    """Bank of the Step I q/k/v projections and the output projection."""
    if mode == "cross":
        return "shared"
    return op_type(choice) if mode == "entangled" else choice


def mixer_key(mode: str, choice: str) -> str:
    """Bank of the Step II weights (ACmix W^P and shift kernel, split-attention MLP)."""
    return choice if mode == "classical" else op_type(choice)


def edge_key(mode: str, edge_op: str) -> str:
    """Bank of an MFAM edge's convolution weights."""
    return edge_op if mode == "classical" else "conv"


def banks(keys_of_choices: dict[str, str]) -> dict[str, list[str]]:
    """Invert a choice -> key mapping: key -> the choices it serves (in order)."""
    out: dict[str, list[str]] = {}
    for choice, key in keys_of_choices.items():
        out.setdefault(key, []).append(choice)
    return out
