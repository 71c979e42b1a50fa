//! A synchronous batch function: one OS thread per partition, never a
//! tokio worker, so a long batch cannot stall the runtime.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use crate::batch::Batch;
use crate::engine::partition::{PartitionContext, Runner, judge};
use crate::error::{Failure, StartError, panic_message};

/// A synchronous batch function with per-partition state `S`.
pub(crate) struct SyncRunner<S, Fac, F> {
    pub(crate) factory: Fac,
    pub(crate) function: F,
    /// State for `inline` calls, made on first use by the factory.
    pub(crate) inline_state: Mutex<Option<S>>,
}

impl<I, O, E, S, Fac, F> Runner<I, O, E> for SyncRunner<S, Fac, F>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
    S: Send + 'static,
    Fac: Fn(usize) -> Result<S, E> + Send + Sync + 'static,
    F: Fn(&mut S, Batch<I>) -> Result<Vec<O>, E> + Send + Sync + 'static,
{
    fn spawn(
        self: Arc<Self>,
        ctx: PartitionContext<I, O, E>,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<(), StartError<E>> {
        let index = ctx.index;
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), StartError<E>>>(1);
        let span = tracing::info_span!("partition", serving = %ctx.name, partition = index);
        std::thread::Builder::new()
            .name(format!("{}-p{index}", ctx.name))
            .spawn(move || {
                let _entered = span.enter();
                let made = catch_unwind(AssertUnwindSafe(|| (self.factory)(index)));
                let mut state = match made {
                    Ok(Ok(state)) => {
                        let _ = ready_tx.send(Ok(()));
                        state
                    }
                    Ok(Err(error)) => {
                        let _ = ready_tx.send(Err(StartError::PartitionStart {
                            partition: index,
                            error,
                        }));
                        return;
                    }
                    Err(payload) => {
                        let message = panic_message(payload.as_ref());
                        let _ = ready_tx.send(Err(StartError::PartitionStartPanicked {
                            partition: index,
                            message,
                        }));
                        return;
                    }
                };
                let mut ctx = ctx;
                while let Some(work) = ctx.next_work_blocking() {
                    let Some((batch, span, started)) = ctx.begin(work) else {
                        continue;
                    };
                    // The span is entered and left inside the outer guard: an
                    // application's tracing layer runs there, and its panic
                    // fails this batch like the function's own would, rather
                    // than ending the partition.
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        let _in_batch = span.enter();
                        catch_unwind(AssertUnwindSafe(|| (self.function)(&mut state, batch)))
                    }))
                    .unwrap_or_else(Err);
                    ctx.complete(started, span, outcome, true);
                }
            })
            .map_err(StartError::Spawn)?;
        ready_rx
            .recv()
            .unwrap_or(Err(StartError::PartitionStartPanicked {
                partition: index,
                message: Arc::from("the partition thread ended before its state was made"),
            }))
    }

    fn run_inline(
        &self,
        batch: Batch<I>,
        inline_index: usize,
    ) -> Option<Result<Vec<O>, Failure<E>>> {
        let len = batch.len();
        let mut guard = self
            .inline_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            match catch_unwind(AssertUnwindSafe(|| (self.factory)(inline_index))) {
                Ok(Ok(state)) => *guard = Some(state),
                Ok(Err(error)) => return Some(Err(Failure::Batch(Arc::new(error)))),
                Err(payload) => {
                    return Some(Err(Failure::Panicked(panic_message(payload.as_ref()))));
                }
            }
        }
        let state = guard.as_mut()?;
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.function)(state, batch)));
        Some(judge(len, outcome))
    }

    fn runs_off_runtime(&self) -> bool {
        true
    }
}
