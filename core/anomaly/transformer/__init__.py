"""The distilled context transformer (seed 000, without the published code's defects).

Split as in torchgeo: :mod:`.dataset` (K-nearest-neighbour context in
projected metres, batches), :mod:`.model` (plain ``nn.Module``s),
:mod:`.trainer` (teacher and students by EM-derived self-distillation,
batched inference) and :mod:`.detector` (the registered ``Detector``).
"""

from core.anomaly.transformer.detector import TransformerDetector, rank_mean

__all__ = ["TransformerDetector", "rank_mean"]
