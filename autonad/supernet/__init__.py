"""The supernet stage (SPEC section 4): a weight-sharing supernet over a search space.

Public API::

    config = SupernetConfig.load("autonad")          # supernets/*.yaml (or a path)
    net = Supernet(config, num_classes=4)            # starts at the space's largest arch
    net.set_arch(arch)                               # validate + activate (no tensor work)
    out = net(images)                                # {"seg": (B, K, H, W)[, "cap": (B,), "cls": (B, K-1)]}
    model = net.extract(arch)                        # standalone SegmentationNet, plain torch layers
    model = build_subnet(config, 4, arch)            # the same structure, weights uninitialised (to load into)
    size = complexity(model, (320, 320))             # Complexity(params, flops_fvcore, flops_thop)
    size = arch_complexity(space_or_config, arch, (320, 320), num_classes)

* Layout: encoder tensors are channels-last ``(B, H, W, C)``, the decoder and the image
  ``(B, C, H, W)``; conversions are explicit views (`functional.to_nchw`/`to_nhwc`).
* Elastic layers (`elastic`) share one interface: ``set_active(...)``, ``forward``,
  ``extract()``, ``sliced_weights()`` (views of the parameters), ``active_slices()``.
* Weight sharing (`sharing`): ``cross`` (paper), ``entangled``, ``classical``, picked by
  ``weight_sharing`` in the supernet YAML; a mode is a mapping from op choice to weight bank.
* The forward math lives in `modules` (scriptable structure classes) and `functional`; the
  supernet fills them with elastic layers and the extracted model with plain layers, so the
  two compute the same thing and the extracted model scripts and exports to ONNX.
"""

from autonad.supernet.complexity import Complexity, arch_complexity, complexity
from autonad.supernet.config import DecoderConfig, HeadsConfig, SupernetConfig
from autonad.supernet.elastic import (
    Elastic,
    ElasticChoice,
    ElasticConv2d,
    ElasticGroupNorm,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticShiftConv,
)
from autonad.supernet.modules import SegmentationNet
from autonad.supernet.sharing import WEIGHT_SHARING_MODES
from autonad.supernet.supernet import Supernet, build_subnet

__all__ = [
    "WEIGHT_SHARING_MODES", "Complexity", "DecoderConfig", "Elastic", "ElasticChoice", "ElasticConv2d",
    "ElasticGroupNorm", "ElasticLayerNorm", "ElasticLinear", "ElasticShiftConv", "HeadsConfig", "SegmentationNet",
    "Supernet", "SupernetConfig", "arch_complexity", "build_subnet", "complexity",
]  # fmt: skip
