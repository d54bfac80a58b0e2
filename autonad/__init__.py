"""AutoNAD: automated neural architecture design for industrial defect segmentation."""

__version__ = "0.1.0"
