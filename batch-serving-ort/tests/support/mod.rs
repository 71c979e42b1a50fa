//! Finds what the real-model tests need. On a machine without ONNX Runtime
//! or the model files they skip with a loud message, unless
//! `BATCH_SERVING_REQUIRE_ORT=1` (set by `.ci/run` and `scripts/test.sh`)
//! makes a missing runtime a failure.

#![allow(dead_code)]

use batch_serving_ort::{MobileNetFiles, Runtime};

/// The variable under which a missing runtime or model fails the tests.
pub(crate) const REQUIRE_ENV: &str = "BATCH_SERVING_REQUIRE_ORT";

/// The MobileNet files, with the runtime loaded; `None` to skip.
pub(crate) fn mobilenet() -> Option<MobileNetFiles> {
    let found = Runtime::get().and_then(|_| MobileNetFiles::locate(None));
    match found {
        Ok(files) => Some(files),
        Err(error) if std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1") => {
            panic!("{REQUIRE_ENV}=1 but the real-model tests cannot run: {error}")
        }
        Err(error) => {
            eprintln!(
                "\n*** SKIPPING real-model test: {error}\n*** run `bash scripts/test.sh` to fetch the runtime\n"
            );
            None
        }
    }
}

/// Reads a sample image from the models folder.
pub(crate) fn sample(files: &MobileNetFiles, name: &str) -> Vec<u8> {
    let path = files.model.with_file_name(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The variable under which missing MiniLM files fail the tests (set by
/// `.ci/run`, where the shared models folder is always present).
pub(crate) const REQUIRE_MINILM_ENV: &str = "BATCH_SERVING_REQUIRE_MINILM";

/// The MiniLM files, with the runtime loaded; `None` to skip.
pub(crate) fn minilm() -> Option<batch_serving_ort::MiniLmFiles> {
    let found = Runtime::get().and_then(|_| batch_serving_ort::MiniLmFiles::locate(None));
    let required = [REQUIRE_ENV, REQUIRE_MINILM_ENV]
        .iter()
        .filter(|name| std::env::var_os(name).is_some_and(|v| v == "1"))
        .count();
    match found {
        Ok(files) => Some(files),
        Err(error @ batch_serving_ort::OrtError::File { .. })
            if std::env::var_os(REQUIRE_MINILM_ENV).is_none_or(|v| v != "1") =>
        {
            eprintln!("\n*** SKIPPING MiniLM test: {error}\n");
            None
        }
        Err(error) if required > 0 => {
            panic!("the MiniLM tests are required but cannot run: {error}")
        }
        Err(error) => {
            eprintln!("\n*** SKIPPING MiniLM test: {error}\n");
            None
        }
    }
}
