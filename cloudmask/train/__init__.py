"""Training of the cloudmask U-Nets (`cloudmask train`): data, synthetic clouds, teacher labels, loop, export.

Heavy imports (TensorFlow, rasterio, onnxruntime) happen inside the functions, so `cloudmask --help` stays fast.
"""

from cloudmask.train.loop import add_arguments, run

__all__ = ["add_arguments", "run"]
