//! The most batching can gain for a corpus of sentences on this CPU, from
//! direct session runs with no serving at all: every batch full, and every
//! sentence in it as long as the others (so nothing is padded), against one
//! sentence at a time at its own length. No way of forming batches beats
//! that, so S5 holds its measured gains against it.

use std::time::{Duration, Instant};

use batch_serving_ort::embedding::{DEFAULT_MAX_TOKENS, Overflow, TextTokenizer};
use batch_serving_ort::{MiniLmFiles, ModelInputs, ModelSession, SessionOptions};
use ndarray::Array1;

/// Lengths (in tokens) at which runs are timed; a sentence's cost is
/// interpolated between the two nearest, as a run's cost grows smoothly with
/// its length.
pub const SHORT_GRID: [usize; 6] = [6, 8, 12, 16, 24, 32];
/// The grid for sentences of up to 128 tokens.
pub const MIXED_GRID: [usize; 6] = [8, 16, 32, 64, 96, 128];

/// Unbatched time over fully batched time for `corpus`, with batches of
/// `batch` sentences, on one session of 2 intra-op threads.
///
/// # Errors
///
/// When the tokenizer or the session cannot be loaded, or a run fails.
pub fn batching_ceiling(
    files: &MiniLmFiles,
    corpus: &[String],
    batch: usize,
    grid: &[usize],
) -> Result<f64, String> {
    let tokenizer = TextTokenizer::load(&files.tokenizer, DEFAULT_MAX_TOKENS, Overflow::Truncate)
        .map_err(|e| e.to_string())?;
    let lengths = corpus
        .iter()
        .map(|s| tokenizer.tokenize(s).map(|t| t.len()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut session = ModelSession::open(&files.model, &SessionOptions::default().intra_threads(2))
        .map_err(|e| e.to_string())?;
    let mut alone = Vec::with_capacity(grid.len());
    let mut batched = Vec::with_capacity(grid.len());
    for &tokens in grid {
        alone.push(seconds_per_sentence(&mut session, tokens, 1)?);
        batched.push(seconds_per_sentence(&mut session, tokens, batch)?);
    }
    let total = |costs: &[f64]| -> f64 {
        lengths
            .iter()
            .map(|&tokens| interpolate(grid, costs, tokens))
            .sum()
    };
    Ok(total(&alone) / total(&batched).max(f64::MIN_POSITIVE))
}

/// Mean seconds per sentence over runs of `batch` sentences of `tokens`
/// tokens each, after one untimed run (the first run of a shape sets it up).
fn seconds_per_sentence(
    session: &mut ModelSession,
    tokens: usize,
    batch: usize,
) -> Result<f64, String> {
    // Token ids do not change the cost: attention is dense.
    let sentence = ModelInputs::new()
        .with(
            "input_ids",
            Array1::from_shape_fn(tokens, |i| 1000 + i as i64),
        )
        .with("attention_mask", Array1::<i64>::ones(tokens))
        .with("token_type_ids", Array1::<i64>::zeros(tokens));
    let item = session
        .signature()
        .check(sentence)
        .map_err(|e| e.to_string())?;
    let items = vec![item; batch];
    session.run(&items).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut runs = 0u32;
    while runs < 3 || started.elapsed() < Duration::from_millis(250) {
        session.run(&items).map_err(|e| e.to_string())?;
        runs += 1;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(runs) / batch as f64)
}

/// The cost at `tokens`, on the straight line through the two nearest grid
/// points (the first or last two outside the grid).
fn interpolate(grid: &[usize], costs: &[f64], tokens: usize) -> f64 {
    match grid.len() {
        0 => 0.0,
        1 => costs[0],
        n => {
            let upper = grid.partition_point(|&g| g < tokens).clamp(1, n - 1);
            let (x0, x1) = (grid[upper - 1] as f64, grid[upper] as f64);
            let (y0, y1) = (costs[upper - 1], costs[upper]);
            y0 + (y1 - y0) * (tokens as f64 - x0) / (x1 - x0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    #[test]
    fn interpolates_between_and_beyond_the_grid() {
        let grid = [8, 16, 32];
        let costs = [1.0, 2.0, 4.0];
        assert!((interpolate(&grid, &costs, 8) - 1.0).abs() < 1e-12);
        assert!((interpolate(&grid, &costs, 12) - 1.5).abs() < 1e-12);
        assert!((interpolate(&grid, &costs, 24) - 3.0).abs() < 1e-12);
        // Outside the grid: the nearest segment's line.
        assert!((interpolate(&grid, &costs, 4) - 0.5).abs() < 1e-12);
        assert!((interpolate(&grid, &costs, 40) - 5.0).abs() < 1e-12);
    }
}
