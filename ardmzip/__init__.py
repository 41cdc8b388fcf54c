"""ardmzip: neural lossless compression with Autoregressive Diffusion Models.

Architecture (dependencies flow one way):
    cli -> api -> media (files <-> arrays), container (.ardm format), codec (per-plane ARDM coding)
    codec -> ardm (orders, mixture head, loss), coder (constriction ANS), schedule (DP), registry (models)
    registry -> nets (the network)          train/export/data: building the shipped models
"""
__version__ = "0.1.0"
