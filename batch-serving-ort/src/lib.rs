//! ONNX Runtime adapter for batch-serving: not built yet (see the ORT adapter issue). The manifest pins the runtime binding this crate will use.
