"""Mineral identification from specimen photos (seeds 002 and 003).

- :mod:`.properties`  hardness / luster / streak codes and the published per-mineral table
- :mod:`.synthetic`   a deterministic synthetic long-tailed photo set (tests, benchmarks)
- :mod:`.datasets`    folder-per-class photo collections, split, tensors
- :mod:`.samplers`, :mod:`.losses`, :mod:`.metrics`   pieces of the long-tailed training
- :mod:`.backbones`   feature extractors: pretrained EfficientNet-Lite0 (default), torchvision ResNets
- :mod:`.models`      photo classifier, SSF adaptation, the multimodal network (plain nn.Modules)
- :mod:`.heads`       a linear classifier fitted to convergence on cached features
- :mod:`.stages`      keeping a training stage only if the validation mAcc does not fall
- :mod:`.quick`       the quick default Train: frozen pretrained backbone, cached features
- :mod:`.longtail`    FEA -> CFL -> cRT trainer (and the plain cross-entropy baseline)
- :mod:`.multimodal`  trainer and evaluation of the robust multimodal model
- :mod:`.saved`       model folders (JSON config + weights loaded with ``weights_only``) and prediction
"""

# Backbone names live here, free of torch, so the command line can list them without importing it.
DEFAULT_BACKBONE = "efficientnet_lite0"
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
BACKBONES = (DEFAULT_BACKBONE, *RESNETS)
# Photos per forward pass when only reading features or predicting (no training step). Activations
# grow with the batch: at 224 px EfficientNet-Lite0 needs ~0.18 GB more at 8 photos, ~0.54 GB at 32,
# and 8 is no slower per photo on a CPU (issue 12: the default Train peaked at 1.7 GB).
INFERENCE_BATCH = 8
