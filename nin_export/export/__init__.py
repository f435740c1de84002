"""PyTorch -> ONNX, checked against PyTorch, simplified with onnxsim."""
