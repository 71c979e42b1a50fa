//! Inputs that once broke (or, found in review, would have broken) a fuzz
//! target, replayed on every test run: each file under
//! `fuzz/regressions/<target>/` must give its target's promise.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn image_preprocess_regressions_give_an_error_or_a_bounded_tensor() {
    let inputs = inputs("image_preprocess");
    assert!(!inputs.is_empty(), "the regression inputs are missing");
    for (path, bytes) in inputs {
        match batch_serving_ort::mobilenet::preprocess(&bytes) {
            Ok(tensor) => {
                assert_eq!(tensor.shape(), &[3, 224, 224], "{}", path.display());
                assert!(tensor.iter().all(|v| v.is_finite()), "{}", path.display());
            }
            Err(error) => assert!(!error.to_string().is_empty(), "{}", path.display()),
        }
    }
}
