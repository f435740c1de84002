"""FP16 and INT8 graphs: post-training quantization with explicit Q/DQ, calibration and per-layer sensitivity."""
