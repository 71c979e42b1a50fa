//! Inline runs (`Nx.Serving.run`): the batch function runs on the calling
//! thread, without the queue, over the call's own items split by key and
//! `batch_size`. Inline batches are counted apart from queued ones
//! (`Stats::inline_batches`), so the queue's batch statistics describe only
//! what the partitions ran.

use tokio::time::Instant;

use crate::batch::Batch;
use crate::call::core::Inner;
use crate::error::Error;
use crate::key::BatchKey;
use crate::options::CallOptions;
use crate::stats::{Outcome, Recorder};

impl<I, O, E> Inner<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Runs `items` inline. A deadline is checked before each batch (a
    /// running batch cannot be interrupted: it is this thread's own work);
    /// priority and fail-fast do not apply, since nothing is queued.
    pub(crate) fn run_inline(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error<E>> {
        let result = self.run_inline_batches(items, options);
        // Counted as a queued call's outcome is (see `Stats::answered`); an
        // expired one was counted as it expired.
        match &result {
            Ok(_) => self.recorder.count(Outcome::Answered),
            Err(Error::Batch(_) | Error::WrongOutputCount { .. }) => {
                self.recorder.count(Outcome::Failed);
            }
            Err(Error::Panicked { .. }) => self.recorder.count(Outcome::Panicked),
            Err(Error::InlineUnsupported) => Recorder::bump(&self.recorder.rejected),
            Err(_) => {}
        }
        result
    }

    fn run_inline_batches(&self, items: Vec<I>, options: CallOptions) -> Result<Vec<O>, Error<E>> {
        let total = items.len();
        let mut groups: Vec<(BatchKey, Vec<(usize, I)>)> = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            let key = self.key_of(&item);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push((position, item)),
                None => groups.push((key, vec![(position, item)])),
            }
        }
        let mut placed: Vec<Option<O>> = (0..total).map(|_| None).collect();
        for (key, group) in groups {
            let mut group = group.into_iter();
            loop {
                let (positions, chunk): (Vec<usize>, Vec<I>) =
                    group.by_ref().take(self.batch_size).unzip();
                if chunk.is_empty() {
                    break;
                }
                if options.deadline.is_some_and(|at| at <= Instant::now()) {
                    return Err(self.expired_before_queueing());
                }
                let batch = Batch::new(chunk, key, self.partitions, Vec::new());
                let ran = self
                    .runner
                    .run_inline(batch, self.partitions)
                    .ok_or(Error::InlineUnsupported)?;
                // A batch that ran counts, whatever it answered, as queued
                // batches do.
                Recorder::bump(&self.recorder.inline_batches);
                let outputs = ran?;
                for (position, output) in positions.into_iter().zip(outputs) {
                    placed[position] = Some(output);
                }
            }
        }
        Ok(placed.into_iter().flatten().collect())
    }
}
