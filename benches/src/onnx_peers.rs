//! S4's library peers holding MobileNet sessions: amate 0.16.2 and
//! batch-aint-one 0.16.0, each as its docs have it for a CPU-bound model.
//!
//! - amate runs batches on its own worker threads, one per session here
//!   (`workers` = the configuration's sessions), so that as many batches
//!   run at once as the serving has partitions.
//! - batch-aint-one runs `process` on the runtime; a model run of
//!   milliseconds would stall a runtime worker, so `process` hands the
//!   batch to tokio's blocking pool, as tokio's docs say for CPU-bound work,
//!   with `max_key_concurrency` = the sessions.
//!
//! Every caller's input is checked against the model's signature on the
//! caller's side, as the serving's `dispatch` does, and every call's
//! outputs come back to it alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use amate::{Batching, Config, Engine, Queued};
use batch_aint_one::{Batcher, BatchingPolicy, Limits, Processor};
use batch_serving_ort::{CheckedInputs, ModelInputs, ModelOutputs, ModelSession, ModelSignature};
use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// Which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxPeer {
    /// amate, one worker per session.
    Amate,
    /// batch-aint-one, `BatchingPolicy::Immediate`.
    BaoImmediate,
    /// batch-aint-one, `BatchingPolicy::Balanced` (half a batch).
    BaoBalanced,
}

impl OnnxPeer {
    /// Every S4 peer, in report order.
    pub const ALL: [OnnxPeer; 3] = [
        OnnxPeer::Amate,
        OnnxPeer::BaoImmediate,
        OnnxPeer::BaoBalanced,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            OnnxPeer::Amate => "amate 0.16.2",
            OnnxPeer::BaoImmediate => "batch-aint-one 0.16.0 (Immediate)",
            OnnxPeer::BaoBalanced => "batch-aint-one 0.16.0 (Balanced)",
        }
    }
}

/// The sessions a peer's batches run on, and what they ran.
struct Pool {
    sessions: Vec<Mutex<ModelSession>>,
    batches: AtomicU64,
    items: AtomicU64,
}

impl Pool {
    /// Runs `items` on a free session (or waits for the first), counting
    /// the batch.
    fn run(&self, items: &[CheckedInputs]) -> Result<Vec<ModelOutputs>, String> {
        let mut session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .unwrap_or_else(|| {
                self.sessions[0]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            });
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items.len() as u64, Ordering::Relaxed);
        session.run(items).map_err(|e| e.to_string())
    }
}

/// One amate item: the checked input and where its outputs go.
type AmateItem = (CheckedInputs, oneshot::Sender<Result<ModelOutputs, String>>);

struct AmateRun(Arc<Pool>);

impl Batching for AmateRun {
    type Item = AmateItem;

    fn weight(&self, _: &AmateItem) -> usize {
        1
    }

    fn wanted(&self, item: &AmateItem) -> bool {
        !item.1.is_closed()
    }

    /// No announced arrivals here, so amate never waits; as in S1–S3.
    fn window(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn run(&self, batch: Vec<Queued<AmateItem>>) {
        let (inputs, replies): (Vec<CheckedInputs>, Vec<_>) =
            batch.into_iter().map(|q| q.item).unzip();
        match self.0.run(&inputs) {
            Ok(outputs) => {
                for (reply, out) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[derive(Clone)]
struct BaoRun(Arc<Pool>);

impl Processor for BaoRun {
    type Key = ();
    type Input = CheckedInputs;
    type Output = ModelOutputs;
    type Error = String;
    type Resources = ();

    async fn acquire_resources(&self, (): ()) -> Result<(), String> {
        Ok(())
    }

    async fn process(
        &self,
        (): (),
        inputs: impl Iterator<Item = CheckedInputs> + Send,
        (): (),
    ) -> Result<Vec<ModelOutputs>, String> {
        let inputs: Vec<CheckedInputs> = inputs.collect();
        let pool = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || pool.run(&inputs))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// How a started peer takes one checked input.
type PeerCall =
    Box<dyn Fn(CheckedInputs) -> BoxFuture<'static, Result<ModelOutputs, String>> + Send + Sync>;

/// A started peer: a call per input, and the batches it ran.
pub struct StartedPeer {
    call: PeerCall,
    signature: Arc<ModelSignature>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for StartedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedPeer")
            .field("sessions", &self.pool.sessions.len())
            .finish_non_exhaustive()
    }
}

impl StartedPeer {
    /// Checks `inputs` against the model and runs them through the peer.
    pub fn dispatch(
        &self,
        inputs: ModelInputs,
    ) -> BoxFuture<'static, Result<ModelOutputs, String>> {
        match self.signature.check(inputs) {
            Ok(checked) => (self.call)(checked),
            Err(e) => Box::pin(std::future::ready(Err(e.to_string()))),
        }
    }

    /// Mean items per batch so far.
    pub fn mean_batch(&self) -> f64 {
        let batches = self.pool.batches.load(Ordering::Relaxed).max(1);
        self.pool.items.load(Ordering::Relaxed) as f64 / batches as f64
    }
}

/// Starts `peer` on `sessions` (all of one model), batches of at most
/// `batch_size`, on the current runtime.
///
/// # Errors
///
/// When there is no session.
pub fn start(
    peer: OnnxPeer,
    sessions: Vec<ModelSession>,
    batch_size: usize,
) -> Result<StartedPeer, String> {
    let signature = Arc::clone(sessions.first().ok_or("no session")?.signature());
    let workers = sessions.len();
    let pool = Arc::new(Pool {
        sessions: sessions.into_iter().map(Mutex::new).collect(),
        batches: AtomicU64::new(0),
        items: AtomicU64::new(0),
    });
    let call: PeerCall = match peer {
        OnnxPeer::Amate => {
            let config = Config {
                max_batch: batch_size,
                workers,
                capacity: Some(1 << 16),
                waits_unannounced: false,
            };
            let engine = Arc::new(Engine::start(AmateRun(Arc::clone(&pool)), config, |i| {
                format!("amate-onnx-{i}")
            }));
            Box::new(move |checked| {
                let (tx, rx) = oneshot::channel();
                if engine.submit(None, (checked, tx)).is_err() {
                    return Box::pin(std::future::ready(Err("amate: queue full".to_owned())));
                }
                Box::pin(async move { rx.await.map_err(|e| format!("amate: {e}"))? })
            })
        }
        OnnxPeer::BaoImmediate | OnnxPeer::BaoBalanced => {
            let policy = if peer == OnnxPeer::BaoImmediate {
                BatchingPolicy::Immediate
            } else {
                BatchingPolicy::Balanced {
                    min_size_hint: (batch_size / 2).max(1),
                }
            };
            let limits = Limits::builder()
                .max_batch_size(batch_size)
                .max_key_concurrency(workers)
                .max_key_queued_items(1 << 16)
                .build();
            let batcher = Arc::new(
                Batcher::builder()
                    .name("onnx")
                    .processor(BaoRun(Arc::clone(&pool)))
                    .limits(limits)
                    .batching_policy(policy)
                    .build(),
            );
            Box::new(move |checked| {
                let batcher = Arc::clone(&batcher);
                Box::pin(async move {
                    batcher
                        .add((), checked)
                        .await
                        .map_err(|e| format!("batch-aint-one: {e}"))
                })
            })
        }
    };
    Ok(StartedPeer {
        call,
        signature,
        pool,
    })
}
