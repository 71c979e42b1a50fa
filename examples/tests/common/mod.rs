//! What the real-model tests share: finding the runtime and the model
//! files, or skipping loudly when they are missing, unless a
//! `BATCH_SERVING_REQUIRE_*` variable (set in CI) makes that a failure.

#![allow(dead_code)]

use batch_serving_ort::{MiniLmFiles, MobileNetFiles, OrtError, Runtime};

/// Whether the variable `name` is set to 1.
pub(crate) fn required(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// The runtime and the MobileNet files, or `None` after saying why `test`
/// skips; a panic instead when `BATCH_SERVING_REQUIRE_ORT=1`.
pub(crate) fn mobilenet_files(test: &str) -> Option<MobileNetFiles> {
    match Runtime::get().and_then(|_| MobileNetFiles::locate(None)) {
        Ok(files) => Some(files),
        Err(e) if required("BATCH_SERVING_REQUIRE_ORT") => panic!("{e}"),
        Err(e) => {
            eprintln!("\n*** SKIPPING {test}: {e}\n");
            None
        }
    }
}

/// The runtime and the MiniLM files, or `None` after saying why `test`
/// skips. Missing files fail only under `BATCH_SERVING_REQUIRE_MINILM=1`
/// (MiniLM is optional in the models folder); a missing runtime fails
/// under either variable.
pub(crate) fn minilm_files(test: &str) -> Option<MiniLmFiles> {
    match Runtime::get().and_then(|_| MiniLmFiles::locate(None)) {
        Ok(files) => Some(files),
        Err(e @ OrtError::File { .. }) if !required("BATCH_SERVING_REQUIRE_MINILM") => {
            eprintln!("\n*** SKIPPING {test}: {e}\n");
            None
        }
        Err(e)
            if required("BATCH_SERVING_REQUIRE_ORT")
                || required("BATCH_SERVING_REQUIRE_MINILM") =>
        {
            panic!("{e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPING {test}: {e}\n");
            None
        }
    }
}
