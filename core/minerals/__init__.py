"""Mineral identification from specimen photos (seeds 002 and 003).

- :mod:`.properties`  hardness / luster / streak codes and the published per-mineral table
- :mod:`.synthetic`   a deterministic synthetic long-tailed photo set (tests, benchmarks)
- :mod:`.datasets`    folder-per-class photo collections, split, tensors
- :mod:`.samplers`, :mod:`.losses`, :mod:`.metrics`   pieces of the long-tailed training
- :mod:`.models`      ResNet backbones, SSF adaptation, the multimodal network (plain nn.Modules)
- :mod:`.longtail`    FEA -> CFL -> cRT trainer (and the plain cross-entropy baseline)
- :mod:`.multimodal`  trainer and evaluation of the robust multimodal model
- :mod:`.saved`       model folders (JSON config + weights loaded with ``weights_only``) and prediction
"""
