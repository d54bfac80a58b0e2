"""The latency stage (SPEC section 6): per-device tables, the predictor and the search prior.

autonad profile --hw NAME        measure every component of a space here (or --roofline)
device, profile = load_profile("jetson", "autonad", (320, 320))   # name, alias or path
predictor = LatencyPredictor(device, profile, space, classes=2)
predictor.predict(arch)          # ms: calibrated sum of the arch's component entries
prior = LatencyPrior.from_profile(profile, space, temperature=1.0)   # autonad.latency.prior
space.sample(rng, gene_weights=prior.gene_weights)    # faster ops are drawn more often
"""

from autonad.latency.components import ComponentFactory, arch_keys
from autonad.latency.predictor import LatencyPredictor, fit_calibration
from autonad.latency.table import Calibration, DeviceTables, Profile, load_profile, load_tables, table_path

__all__ = [
    "Calibration", "ComponentFactory", "DeviceTables", "LatencyPredictor", "Profile", "arch_keys",
    "fit_calibration", "load_profile", "load_tables", "table_path",
]  # fmt: skip
