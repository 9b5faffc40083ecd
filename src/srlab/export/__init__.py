"""Deploying models outside PyTorch: ONNX export (:mod:`srlab.export.onnx`) and the onnxruntime model that
runs an exported file through srlab's one inference path (:mod:`srlab.export.runtime`).

onnx and onnxruntime are optional dependencies (``pip install 'srlab[deploy]'``); importing this package
does not need them, calling into it does.
"""
