"""The defaults every layer shares, in a module with no heavy imports: the library's modules take
their defaults from here, and the CLI shows them in --help without importing torch or onnx."""

from __future__ import annotations

from .enums import Optimizer

__all__ = [
    "DEFAULT_MODEL", "DEFAULT_FC_WIDTH", "DEFAULT_DATA", "DEFAULT_BATCHES", "DYNAMO_OPSET", "TORCHSCRIPT_OPSET",
    "MIN_CALIB_IMAGES", "RECOMMENDED_CALIB_IMAGES", "DEFAULT_CALIB_COUNT", "DEFAULT_EVAL_COUNT", "DEFAULT_CACHE_DIR",
    "DEFAULT_AGREEMENT_FLOOR", "DEFAULT_EPOCHS", "DEFAULT_BATCH_SIZE", "DEFAULT_PATIENCE", "DEFAULT_LR", "HEAD_BIAS",
    "DEFAULT_BATCH_PROFILE", "DEFAULT_RTX_TARGETS", "DEFAULT_WORKSPACE_MIB", "DEFAULT_IDLE_S", "DEFAULT_IDLE_SETTLE_S",
    "DEFAULT_ONNX_DIR", "PIPELINE_BATCHES", "PIPELINE_MIN_MS",
]  # fmt: skip

# models
DEFAULT_MODEL = "nin-cifar10"  # what every command uses when no --model is given
DEFAULT_FC_WIDTH = 4096  # AlexNet's classifier width, the FC twins' default

# data
DEFAULT_DATA = "digits"  # the built-in source every command uses when none is given

# bench
DEFAULT_BATCHES = (1, 8, 32)
# The pipeline's benchmark: fewer batches and shorter timed loops than 'nin-export bench' (TimingOptions:
# 3000 ms), so that the main command stays a few minutes on a 2-core CPU
PIPELINE_BATCHES = (1, 8)
PIPELINE_MIN_MS = 1000.0
# Idle power is measured once, before any work: DEFAULT_IDLE_SETTLE_S with nothing running (GPU clocks come
# down after earlier work), then DEFAULT_IDLE_S of samples (longer than a second, so that a 10 Hz tegrastats
# or a 20 Hz NVML poll gives tens of samples)
DEFAULT_IDLE_S = 2.0
DEFAULT_IDLE_SETTLE_S = 3.0

# export
DEFAULT_ONNX_DIR = "out"  # where 'nin-export onnx' writes, and where 'nin-export trt' without a path looks
DYNAMO_OPSET = 18  # what torch.onnx's dynamo exporter writes natively; older opsets need its version converter
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's default here, also on torch 2.3 (JetPack 6)

# quantize. Below 16 images a single image sets most per-tensor ranges; TensorRT's and OpenVINO's
# guidance is a few hundred representative images (NNCF's default subset is 300).
MIN_CALIB_IMAGES = 16
RECOMMENDED_CALIB_IMAGES = 300
DEFAULT_CALIB_COUNT = 300
DEFAULT_EVAL_COUNT = 200
DEFAULT_CACHE_DIR = "calibration"
DEFAULT_AGREEMENT_FLOOR = 0.95

# train
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 64
DEFAULT_PATIENCE = 2
DEFAULT_LR = {Optimizer.ADAMW: 1e-3, Optimizer.SGD: 0.05}
HEAD_BIAS = 1.0

# trt. Without a GPU, TensorRT-RTX builds ahead of time for DEFAULT_RTX_TARGETS (Ampere, Ada,
# Blackwell). Turing (SM75) only on request: TensorRT-RTX 1.7 refuses FP32 GEMMs there. With a GPU: CURRENT.
DEFAULT_BATCH_PROFILE = (1, 8, 32)
DEFAULT_RTX_TARGETS = ("SM80", "SM86", "SM89", "SM120")
DEFAULT_WORKSPACE_MIB = 1024
