//! Classifies image files (or every JPEG/PNG in folders) with MobileNetV2 and
//! prints the top-5 of each. All files are dispatched at once, so the serving
//! batches them.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin classify -- [--models DIR] [--partitions N] PATH...
//! ```

use std::path::{Path, PathBuf};

use batch_serving_examples::args::Args;
use batch_serving_examples::setup::ServingConfig;

fn image_files(paths: &[String]) -> Vec<PathBuf> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    };
    let mut files = Vec::new();
    for path in paths.iter().map(PathBuf::from) {
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
    let args = Args::from_env();
    let files = image_files(args.positional());
    if files.is_empty() {
        eprintln!(
            "usage: classify [--models DIR] [--batch-size N] [--partitions N] [--threads N] IMAGE_OR_FOLDER..."
        );
        std::process::exit(2);
    }
    let config = ServingConfig::from_args(&args);
    let classifier = config.start()?;
    let calls: Vec<_> = files
        .iter()
        .map(|path| {
            let (classifier, path) = (classifier.clone(), path.clone());
            tokio::spawn(async move {
                let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
                classifier.classify(bytes).await.map_err(|e| e.to_string())
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
        "\n{} image(s) in {} batch(es), mean batch size {:.1} ({})",
        stats.items,
        stats.batches,
        stats.mean_batch_size,
        config.describe()
    );
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
