//! Indexes documents with all-MiniLM-L6-v2 and answers a query by cosine
//! similarity. Every document goes through one streaming `dispatch_many`;
//! the progress bar follows its events (sentences done, sentences/s, ETA,
//! and the padding overhead the batches reported).
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin embed_index -- \
//!     [--docs README.md docs/*.md | --input docs.txt | --generate 2000] [--out embeddings.f32] \
//!     [--query "a dog playing in the park"] [--top-k 5] [--buckets 8,16,32 | none]
//! ```
//!
//! `--docs` indexes the paragraphs and list items of markdown files (the
//! demo asks the repository's own docs a question); `--input` reads one
//! document per line (blank lines are skipped); without either a
//! reproducible corpus of `--generate` sentences (6-64 tokens) is made, as
//! the benchmarks use. The vectors are written to `--out` as little-endian f32 rows,
//! 384 per row, in document order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use batch_serving::Event;
use batch_serving_examples::embed_setup::EmbedConfig;
use batch_serving_examples::paragraphs::paragraphs;
use batch_serving_examples::vector_index::VectorIndex;
use batch_serving_ort::embedding::{EMBEDDED_EVENT, EmbeddedBatch, synthetic_corpus};
use clap::Parser;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

/// Indexes documents with all-MiniLM-L6-v2 and answers a query by cosine
/// similarity.
#[derive(Debug, Parser)]
struct Cli {
    /// Markdown files whose paragraphs are the documents.
    #[arg(long, num_args = 1.., conflicts_with = "input")]
    docs: Vec<PathBuf>,
    /// One document per line (blank lines are skipped) [default: a generated corpus].
    #[arg(long, env = "BS_INPUT")]
    input: Option<PathBuf>,
    /// Sentences to generate when there is no --input.
    #[arg(long, env = "BS_GENERATE", default_value_t = 2000)]
    generate: usize,
    /// Where the vectors go, as little-endian f32 rows of 384.
    #[arg(long, env = "BS_OUT", default_value = "embeddings.f32")]
    out: PathBuf,
    /// The query to answer.
    #[arg(
        long,
        env = "BS_QUERY",
        default_value = "a dog playing with a ball in the park"
    )]
    query: String,
    /// Matches to print.
    #[arg(long, env = "BS_TOP_K", default_value_t = 5)]
    top_k: usize,
    #[command(flatten)]
    embed: EmbedConfig,
}

fn documents(cli: &Cli) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    if !cli.docs.is_empty() {
        let mut texts = Vec::new();
        for path in &cli.docs {
            let markdown = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --docs {}: {e}", path.display()))?;
            let source = path.display().to_string();
            texts.extend(
                paragraphs(&source, &markdown)
                    .into_iter()
                    .map(|p| format!("[{}] {}", p.source, p.text)),
            );
        }
        return Ok(texts);
    }
    match &cli.input {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --input {}: {e}", path.display()))?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect())
        }
        None => Ok(synthetic_corpus(cli.generate, 6..=64, 42)),
    }
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style =
        ProgressStyle::with_template("{bar:40} {pos}/{len} sentences  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let config = &cli.embed;
    let embedder = config.start()?;
    let texts = documents(&cli)?;
    if texts.is_empty() {
        return Err("nothing to index: the input has no non-blank lines".into());
    }
    println!(
        "indexing {} document(s) ({})",
        texts.len(),
        config.describe()
    );

    let started = Instant::now();
    let bar = progress_bar(texts.len());
    let mut vectors = vec![Vec::new(); texts.len()];
    let (mut real_tokens, mut padded_tokens, mut batches) = (0usize, 0usize, 0usize);
    let mut events = embedder.embed_stream(&texts)?;
    while let Some(event) = events.next().await {
        match event? {
            Event::Output { offset, outputs } => {
                bar.inc(outputs.len() as u64);
                for (i, vector) in outputs.into_iter().enumerate() {
                    vectors[offset + i] = vector;
                }
            }
            Event::Hook(hook) if hook.name == EMBEDDED_EVENT => {
                if let Some(batch) = hook.payload::<EmbeddedBatch>() {
                    batches += 1;
                    real_tokens += batch.real_tokens;
                    padded_tokens += batch.padded_tokens();
                    bar.set_message(format!(
                        "padding +{:.0}%",
                        overhead(padded_tokens, real_tokens)
                    ));
                }
            }
            Event::Hook(_) => {}
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "embedded {} sentence(s) in {elapsed:.1} s: {:.0} sentences/s, {batches} batches (mean {:.1}), padding +{:.0}% tokens",
        texts.len(),
        texts.len() as f64 / elapsed,
        texts.len() as f64 / batches.max(1) as f64,
        overhead(padded_tokens, real_tokens)
    );

    let index = VectorIndex { texts, vectors };
    let out = &cli.out;
    index.write_vectors(out)?;
    println!("wrote {} vectors to {}", index.vectors.len(), out.display());

    let query = &cli.query;
    let query_vector = embedder.embed(query).await?;
    println!("top matches for {query:?}:");
    for hit in index.search(&query_vector, cli.top_k) {
        println!(
            "  {:.3}  #{:<6} {}",
            hit.score,
            hit.index,
            shorten(hit.text, 220)
        );
    }
    embedder.serving().shutdown().await;
    Ok(())
}

/// Padding as a percentage of the real tokens.
fn overhead(padded: usize, real: usize) -> f64 {
    if real == 0 {
        0.0
    } else {
        (padded as f64 / real as f64 - 1.0) * 100.0
    }
}

/// `text` cut at a word boundary to about `limit` characters.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let cut: String = text.chars().take(limit).collect();
    let end = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", &cut[..end])
}
