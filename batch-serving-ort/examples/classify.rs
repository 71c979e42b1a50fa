//! Classifies image files (or every JPEG/PNG in folders) with MobileNetV2 and
//! prints the top-5 of each. Every file is dispatched at once, so the serving
//! batches them.
//!
//! ```text
//! cargo run --release -p batch-serving-ort --example classify -- PATH...
//! ```
//!
//! The model is found in `$BATCH_SERVING_MODELS` (or a `shared/models`
//! folder beside the working directory), and the runtime library through
//! `$ORT_DYLIB_PATH` or an installed `onnxruntime` Python package.

use std::path::{Path, PathBuf};

use batch_serving_ort::{MobileNet, MobileNetFiles};

fn image_files(paths: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    };
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_dir(&path) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_image(p))
                    .collect();
                found.sort();
                files.extend(found);
            }
            Err(_) => files.push(path),
        }
    }
    files
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = image_files(std::env::args_os().skip(1).map(PathBuf::from));
    if files.is_empty() {
        eprintln!("usage: classify IMAGE_OR_FOLDER...");
        std::process::exit(2);
    }
    let model = MobileNetFiles::locate(None)?;
    let classifier = MobileNet::builder(&model)?
        .serving(|core| core.batch_size(16))
        .start()?;
    let calls: Vec<_> = files
        .iter()
        .map(|path| {
            let (classifier, path) = (classifier.clone(), path.clone());
            tokio::spawn(async move {
                let bytes = std::fs::read(&path)?;
                let top = classifier.classify(bytes).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(top)
            })
        })
        .collect();
    let mut failures = 0;
    for (path, call) in files.iter().zip(calls) {
        println!("{}", path.display());
        match call.await? {
            Ok(top) => {
                for p in top {
                    println!(
                        "  {:>5.1}%  {:>3}  {}",
                        p.probability * 100.0,
                        p.class,
                        p.label
                    );
                }
            }
            Err(e) => {
                failures += 1;
                println!("  error: {e}");
            }
        }
    }
    let stats = classifier.serving().stats();
    println!(
        "\n{} image(s) in {} batch(es), mean batch size {:.1}",
        stats.items, stats.batches, stats.mean_batch_size
    );
    classifier.serving().shutdown().await;
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
