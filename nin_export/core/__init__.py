"""The ground floor every stage stands on: errors, enums, defaults, typed settings files, atomic file I/O,
manifests, environment facts, data loading, ONNX graph helpers and output comparison. Imports nothing above it."""
