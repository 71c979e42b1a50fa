//! S5: all-MiniLM-L6-v2 sentence embeddings under 64 concurrent callers,
//! four ways: one sentence at a time, batches padded to a fixed 128 tokens,
//! batches padded to their longest sentence, batches keyed by length
//! bucket, and those buckets under the adaptive policy, weighed in tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use batch_serving::Policy;
use batch_serving_ort::embedding::{Embedder, LengthBuckets, Padding, Tokens};
use batch_serving_ort::{MiniLmFiles, SessionOptions};
use hdrhistogram::Histogram;

/// How the serving forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// (a) `batch_size` 1: every sentence runs alone at its exact length.
    Unbatched,
    /// (b) Batches of 16 in arrival order, every one padded to 128 tokens
    /// (what the tokenizer's shipped padding setting does).
    FixedPadding,
    /// (c) Batches of 16 in arrival order, padded to their longest sentence.
    PadToLongest,
    /// (d) Batches of 16 keyed by length bucket, padded to their longest.
    LengthBuckets,
    /// (e) As (d), under `latency_target(ADAPTIVE_TARGET)` with 16 as the
    /// cap, each sentence weighed by its tokens.
    Adaptive,
}

/// The adaptive variant's latency target: above the bucketed variant's
/// p99 on the short corpus, below it on the long one.
pub const ADAPTIVE_TARGET: Duration = Duration::from_millis(600);

/// How long a caller refused at admission waits before its next call.
const REFUSED_BACKOFF: Duration = Duration::from_millis(10);

impl Batching {
    /// All four, in the report's order.
    pub const ALL: [Batching; 5] = [
        Self::Unbatched,
        Self::FixedPadding,
        Self::PadToLongest,
        Self::LengthBuckets,
        Self::Adaptive,
    ];

    /// The report's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unbatched => "(a) unbatched",
            Self::FixedPadding => "(b) batched, padded to 128",
            Self::PadToLongest => "(c) batched, padded to longest",
            Self::LengthBuckets => "(d) length-bucket keys",
            Self::Adaptive => "(e) length buckets, adaptive 600 ms, weighed in tokens",
        }
    }
}

/// One measured run over a corpus.
#[derive(Debug, Clone, Copy)]
pub struct EmbedCell {
    /// Sentences per second over the whole corpus.
    pub per_second: f64,
    /// Median call latency.
    pub p50: Duration,
    /// 99th percentile call latency.
    pub p99: Duration,
    /// Mean sentences per batch.
    pub mean_batch: f64,
    /// Calls refused at admission (the adaptive variant only).
    pub refused: u64,
}

/// The encoder's files, with the runtime loaded.
#[derive(Debug, Clone)]
pub struct EmbedSetup {
    files: MiniLmFiles,
}

impl EmbedSetup {
    /// Finds the runtime and the MiniLM files, or says why not.
    ///
    /// # Errors
    ///
    /// The runtime's or the files' error, as text.
    pub fn find() -> Result<Self, String> {
        batch_serving_ort::Runtime::get().map_err(|e| e.to_string())?;
        let files = MiniLmFiles::locate(None).map_err(|e| e.to_string())?;
        Ok(Self { files })
    }

    /// The encoder's files.
    pub fn files(&self) -> &MiniLmFiles {
        &self.files
    }

    fn start(&self, batching: Batching) -> Result<Embedder, String> {
        let (batch_size, padding, buckets) = match batching {
            Batching::Unbatched => (1, Padding::Longest, LengthBuckets::single()),
            Batching::FixedPadding => (16, Padding::Fixed(128), LengthBuckets::single()),
            Batching::PadToLongest => (16, Padding::Longest, LengthBuckets::single()),
            Batching::LengthBuckets | Batching::Adaptive => {
                (16, Padding::Longest, LengthBuckets::default())
            }
        };
        let adaptive = batching == Batching::Adaptive;
        Embedder::builder(self.files.clone())
            .session_options(SessionOptions::default().intra_threads(2))
            .padding(padding)
            .buckets(buckets)
            .serving(move |b| {
                let b = b.batch_size(batch_size);
                if adaptive {
                    b.latency_target(ADAPTIVE_TARGET)
                        .weigh_by(|tokens: &Tokens| tokens.len())
                } else {
                    b.policy(Policy::Eager)
                }
            })
            .start()
            .map_err(|e| e.to_string())
    }

    /// Sentences per second in steady state: `callers` closed-loop callers
    /// cycle through `corpus` (each call takes the next sentence), and the
    /// calls that finish inside `window`, which opens after `warm_up`, are
    /// counted, so the start (an idle partition takes the first sentence
    /// alone) and the drain at the end do not weigh on the batched variants.
    ///
    /// # Errors
    ///
    /// When the serving cannot start or a call fails.
    pub async fn run(
        &self,
        batching: Batching,
        corpus: &Arc<Vec<String>>,
        callers: usize,
        warm_up: Duration,
        window: Duration,
    ) -> Result<EmbedCell, String> {
        let embedder = self.start(batching)?;
        // The first run of a session allocates its arenas.
        embedder
            .embed(&corpus[0])
            .await
            .map_err(|e| e.to_string())?;
        let next = Arc::new(AtomicUsize::new(0));
        let from = Instant::now() + warm_up;
        let until = from + window;
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (embedder, corpus, next) =
                    (embedder.clone(), Arc::clone(corpus), Arc::clone(&next));
                tokio::spawn(async move {
                    let mut latencies = new_histogram();
                    let (mut counted, mut refused) = (0u64, 0u64);
                    while Instant::now() < until {
                        let i = next.fetch_add(1, Ordering::Relaxed) % corpus.len();
                        let sent = Instant::now();
                        // A call still waiting when the window closes is
                        // dropped, which withdraws it: the cell ends within
                        // one batch of the window instead of draining the queue.
                        let call = embedder.embed(&corpus[i]);
                        let Ok(vector) = tokio::time::timeout_at(until.into(), call).await else {
                            break;
                        };
                        let vector = match vector {
                            Ok(vector) => vector,
                            Err(batch_serving::Error::PredictedLate { .. }) => {
                                refused += 1;
                                tokio::time::sleep(REFUSED_BACKOFF).await;
                                continue;
                            }
                            Err(e) => return Err(e.to_string()),
                        };
                        if vector.len() != 384 {
                            return Err(format!("a {}-d vector", vector.len()));
                        }
                        let done = Instant::now();
                        if done >= from && done <= until {
                            counted += 1;
                            let _ = latencies.record((done - sent).as_micros() as u64);
                        }
                    }
                    Ok::<_, String>((counted, refused, latencies))
                })
            })
            .collect();
        let mut latencies = new_histogram();
        let (mut counted, mut refused) = (0, 0);
        for task in tasks {
            let (n, turned_away, histogram) = task.await.map_err(|e| e.to_string())??;
            counted += n;
            refused += turned_away;
            let _ = latencies.add(histogram);
        }
        let stats = embedder.serving().stats();
        embedder.serving().shutdown().await;
        Ok(EmbedCell {
            per_second: counted as f64 / window.as_secs_f64(),
            p50: Duration::from_micros(latencies.value_at_quantile(0.5)),
            p99: Duration::from_micros(latencies.value_at_quantile(0.99)),
            mean_batch: stats.mean_batch_size,
            refused,
        })
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
}
