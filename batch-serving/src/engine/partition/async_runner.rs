//! An asynchronous batch function (batched database look-ups, remote
//! calls): one tokio task per partition.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use crate::batch::Batch;
use crate::engine::partition::{PartitionContext, Runner, judge};
use crate::error::{Failure, StartError};

/// An asynchronous batch function (for I/O-bound work such as batched
/// database look-ups): each partition is a tokio task.
pub(crate) struct AsyncRunner<I, O, E, F> {
    pub(crate) function: F,
    /// For a synchronous function run on the runtime
    /// (`Serving::new_on_runtime`): the same function, called directly by
    /// `inline`. A truly async function has none, and cannot run inline.
    pub(crate) inline: Option<InlineFn<I, O, E>>,
}

/// A synchronous batch function that an async partition also runs.
pub(crate) type InlineFn<I, O, E> = Arc<dyn Fn(Batch<I>) -> Result<Vec<O>, E> + Send + Sync>;

impl<I, O, E, F, Fut> Runner<I, O, E> for AsyncRunner<I, O, E, F>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
    F: Fn(Batch<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
{
    fn spawn(
        self: Arc<Self>,
        mut ctx: PartitionContext<I, O, E>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), StartError<E>> {
        let span = tracing::info_span!("partition", serving = %ctx.name, partition = ctx.index);
        runtime.spawn(
            async move {
                while let Some(work) = ctx.jobs.recv().await {
                    let Some((batch, span, started)) = ctx.begin(work) else {
                        continue;
                    };
                    // The call itself sits inside the async block, so a panic
                    // before the function's first await is caught too.
                    // Instrumented inside the guard, so that a panic of a
                    // tracing layer entering the span fails this batch; and
                    // dropped inside one, as dropping it enters the span too.
                    let mut guarded = Box::pin(
                        AssertUnwindSafe(
                            async { (self.function)(batch).await }.instrument(span.clone()),
                        )
                        .catch_unwind(),
                    );
                    let outcome = (&mut guarded).await;
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(guarded)));
                    // Already on a runtime worker: answering here is as
                    // cheap as anywhere.
                    ctx.complete(started, span, outcome, false);
                }
            }
            .instrument(span),
        );
        Ok(())
    }

    fn run_inline(
        &self,
        batch: Batch<I>,
        _inline_index: usize,
    ) -> Option<Result<Vec<O>, Failure<E>>> {
        let function = self.inline.as_ref()?;
        let len = batch.len();
        let outcome = catch_unwind(AssertUnwindSafe(|| function(batch)));
        Some(judge(len, outcome))
    }

    fn runs_off_runtime(&self) -> bool {
        false
    }
}
