//! S4: MobileNetV2 on ONNX Runtime, served under 64 concurrent callers,
//! against direct session calls in a loop with the same threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batch_serving::Policy;

/// How long a closed-loop caller refused at admission waits before its
/// next call.
pub const REFUSED_BACKOFF: Duration = Duration::from_millis(10);
use batch_serving_ort::mobilenet::preprocess;
use batch_serving_ort::{
    CheckedInputs, MobileNetFiles, ModelInputs, ModelServingBuilder, ModelSession, SessionOptions,
};
use ndarray::Array3;

use crate::onnx_peers::{self, OnnxPeer};

/// The model and one pre-processed image; the runtime is loaded.
#[derive(Debug, Clone)]
pub struct OnnxSetup {
    files: MobileNetFiles,
    image: Array3<f32>,
}

impl OnnxSetup {
    /// Finds the runtime and the model, or says why not.
    ///
    /// # Errors
    ///
    /// The runtime's or the files' error, as text.
    pub fn find() -> Result<Self, String> {
        batch_serving_ort::Runtime::get().map_err(|e| e.to_string())?;
        let files = MobileNetFiles::locate(None).map_err(|e| e.to_string())?;
        let image = std::fs::read(files.model.with_file_name("dogs.jpg"))
            .ok()
            .and_then(|bytes| preprocess(&bytes).ok())
            .unwrap_or_else(|| {
                Array3::from_shape_fn((3, 224, 224), |(c, y, x)| ((c + y + x) % 7) as f32 / 7.0)
            });
        Ok(Self { files, image })
    }

    fn item(&self) -> ModelInputs {
        ModelInputs::new().with("input", self.image.clone())
    }

    /// What one caller's own copy of the input costs it: the mean time to
    /// build a fresh `ModelInputs` from the pre-processed image, as every
    /// served call does and the direct loop never does.
    pub fn input_copy_cost(&self) -> Duration {
        const COPIES: u32 = 200;
        let started = Instant::now();
        for _ in 0..COPIES {
            std::hint::black_box(self.item());
        }
        started.elapsed() / COPIES
    }

    fn options(threads: usize) -> SessionOptions {
        SessionOptions::default().intra_threads(threads)
    }

    /// Images per second with `sessions` threads each running its own
    /// session (of `threads` intra-op threads) on batches of `batch`.
    ///
    /// # Errors
    ///
    /// When a session cannot be opened or a run fails.
    pub fn direct(
        &self,
        sessions: usize,
        threads: usize,
        batch: usize,
        time: Duration,
    ) -> Result<f64, String> {
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..sessions)
            .map(|_| {
                let (model, done) = (self.files.model.clone(), Arc::clone(&done));
                let mut session = ModelSession::open(&model, &Self::options(threads))
                    .map_err(|e| e.to_string())?;
                let item: CheckedInputs = session
                    .signature()
                    .check(self.item())
                    .map_err(|e| e.to_string())?;
                let items = vec![item; batch];
                Ok(std::thread::spawn(move || -> Result<(), String> {
                    while started.elapsed() < time {
                        session.run(&items).map_err(|e| e.to_string())?;
                        done.fetch_add(items.len() as u64, Ordering::Relaxed);
                    }
                    Ok(())
                }))
            })
            .collect::<Result<_, String>>()?;
        for worker in workers {
            worker
                .join()
                .map_err(|_| "a direct worker panicked".to_owned())??;
        }
        Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
    }

    /// Images per second, mean batch size and calls refused at admission
    /// through the serving with `partitions` partitions of `threads`
    /// threads, batches of at most `batch_size` and `policy`, under
    /// `callers` closed-loop callers that each send their own copy of the
    /// image. A caller refused at admission (the adaptive policy) backs off
    /// for `REFUSED_BACKOFF` before its next call, as a client would.
    ///
    /// # Errors
    ///
    /// When the serving cannot start or a call fails otherwise.
    pub async fn served(
        &self,
        partitions: usize,
        threads: usize,
        (batch_size, policy): (usize, Policy),
        callers: usize,
        time: Duration,
    ) -> Result<(f64, f64, u64), String> {
        let model = ModelServingBuilder::new(&self.files.model)
            .session_options(Self::options(threads))
            .serving(move |core| {
                core.partitions(partitions)
                    .batch_size(batch_size)
                    .policy(policy)
            })
            .start()
            .map_err(|e| e.to_string())?;
        model
            .dispatch(self.item())
            .await
            .map_err(|e| e.to_string())?;
        let before = model.serving().stats();
        let call = {
            let model = model.clone();
            move |item| {
                let model = model.clone();
                async move {
                    match model.dispatch(item).await {
                        Ok(_) => Ok(Outcome::Answered),
                        Err(batch_serving::Error::PredictedLate { .. }) => Ok(Outcome::Refused),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        };
        let (per_second, refused) = self.closed_loop(callers, time, call).await?;
        let after = model.serving().stats();
        let batches = after.batches.saturating_sub(before.batches).max(1);
        let mean_batch = after.items.saturating_sub(before.items) as f64 / batches as f64;
        model.serving().shutdown().await;
        Ok((per_second, mean_batch, refused))
    }

    /// Images per second and mean batch size through a library peer
    /// (`onnx_peers`) on `partitions` sessions of `threads` threads each,
    /// batches of at most `batch_size`, under `callers` closed-loop callers
    /// that each send their own copy of the image, as for `served`.
    ///
    /// # Errors
    ///
    /// When a session cannot be opened or a call fails.
    pub async fn peer_served(
        &self,
        peer: OnnxPeer,
        (partitions, threads): (usize, usize),
        batch_size: usize,
        callers: usize,
        time: Duration,
    ) -> Result<(f64, f64), String> {
        let sessions = (0..partitions)
            .map(|_| {
                ModelSession::open(&self.files.model, &Self::options(threads))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let started_peer = Arc::new(onnx_peers::start(peer, sessions, batch_size)?);
        started_peer.dispatch(self.item()).await?;
        let call = {
            let started_peer = Arc::clone(&started_peer);
            move |item| {
                let reply = started_peer.dispatch(item);
                async move { reply.await.map(|_| Outcome::Answered) }
            }
        };
        let (per_second, _) = self.closed_loop(callers, time, call).await?;
        Ok((per_second, started_peer.mean_batch()))
    }

    /// Runs `callers` closed-loop callers, each sending its own copy of the
    /// image through `call` until `time` has passed; returns images per
    /// second and the calls refused at admission. A refused caller backs
    /// off for `REFUSED_BACKOFF` before its next call, as a client would.
    async fn closed_loop<C, Fut>(
        &self,
        callers: usize,
        time: Duration,
        call: C,
    ) -> Result<(f64, u64), String>
    where
        C: Fn(ModelInputs) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Outcome, String>> + Send + 'static,
    {
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (call, item) = (call.clone(), self.item());
                tokio::spawn(async move {
                    let (mut done, mut refused) = (0u64, 0u64);
                    while started.elapsed() < time {
                        match call(item.clone()).await? {
                            Outcome::Answered => done += 1,
                            Outcome::Refused => {
                                refused += 1;
                                tokio::time::sleep(REFUSED_BACKOFF).await;
                            }
                        }
                    }
                    Ok::<_, String>((done, refused))
                })
            })
            .collect();
        let (mut done, mut refused) = (0, 0);
        for task in tasks {
            let (answered, turned_away) = task.await.map_err(|e| e.to_string())??;
            done += answered;
            refused += turned_away;
        }
        Ok((done as f64 / started.elapsed().as_secs_f64(), refused))
    }
}

/// What one closed-loop call came to.
enum Outcome {
    /// Answered.
    Answered,
    /// Refused at admission (the adaptive policy's `PredictedLate`).
    Refused,
}
