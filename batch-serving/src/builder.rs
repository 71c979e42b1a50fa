//! Configuring and starting a serving.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Duration;

use crate::batch::Batch;
use crate::call::core::{Inner, KeyFn};
use crate::engine::message::{OnDeck, PartitionLink};
use crate::engine::partition::async_runner::{AsyncRunner, InlineFn};
use crate::engine::partition::sync_runner::SyncRunner;
use crate::engine::partition::{PartitionContext, Runner};
use crate::engine::policy::cost_model::Line;
use crate::engine::policy::{Batching, Rules};
use crate::engine::queue::WeighFn;
use crate::engine::scheduler::Scheduler;
use crate::error::StartError;
use crate::key::BatchKey;
use crate::policy::Policy;
use crate::room::QueueRoom;
use crate::serving::Serving;
use crate::stats::Recorder;

/// Default `batch_size`.
///
/// ```
/// assert_eq!(batch_serving::DEFAULT_BATCH_SIZE, 32);
/// ```
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Default `batch_timeout`.
///
/// ```
/// assert_eq!(batch_serving::DEFAULT_BATCH_TIMEOUT.as_millis(), 5);
/// ```
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_millis(5);
/// Default queue capacity, in batches: `queue_capacity` defaults to this
/// many times `batch_size` items.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving, DEFAULT_QUEUE_BATCHES};
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
///     .batch_size(4)
///     .start()?;
/// assert_eq!(serving.queue_capacity(), 4 * DEFAULT_QUEUE_BATCHES);
/// # Ok(()) }
/// ```
pub const DEFAULT_QUEUE_BATCHES: usize = 1024;

/// Configuration for a [`Serving`], made by [`Serving::new`],
/// [`Serving::with_state`] or [`Serving::new_async`] and consumed by
/// [`start`](Builder::start).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Policy, Serving};
/// use std::time::Duration;
/// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * x).collect()))
///     .batch_size(64)
///     .batch_timeout(Duration::from_millis(2))
///     .partitions(2)
///     .policy(Policy::Eager)
///     .queue_capacity(10_000)
///     .name("squares")
///     .start()?;
/// assert_eq!(serving.dispatch(3).await?, 9);
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder<I, O, E> {
    runner: Arc<dyn Runner<I, O, E>>,
    batch_size: usize,
    batch_timeout: Duration,
    partitions: usize,
    policy: Policy,
    pipeline: bool,
    busy_poll: Duration,
    queue_capacity: Option<usize>,
    key_fn: Option<KeyFn<I>>,
    weigh: Option<WeighFn<I>>,
    max_batch_weight: Option<usize>,
    cost_prior: Option<Line>,
    name: Cow<'static, str>,
}

impl<I, O, E> std::fmt::Debug for Builder<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("batch_size", &self.batch_size)
            .field("batch_timeout", &self.batch_timeout)
            .field("partitions", &self.partitions)
            .field("policy", &self.policy)
            .field("queue_capacity", &self.queue_capacity)
            .field("pipeline", &self.pipeline)
            .field("busy_poll", &self.busy_poll)
            .field("keyed", &self.key_fn.is_some())
            .field("weighed", &self.weigh.is_some())
            .field("max_batch_weight", &self.max_batch_weight)
            .field("name", &self.name)
            .finish()
    }
}

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// A serving of a synchronous, stateless batch function. It runs on
    /// threads the serving owns, one per partition.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.dispatch_many(vec![1, 2]).await?, vec![2, 3]);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::new_ret_no_self)] // `Serving::new(f)...start()` reads as the user's intent
    pub fn new<F>(function: F) -> Builder<I, O, E>
    where
        F: Fn(Batch<I>) -> Result<Vec<O>, E> + Send + Sync + 'static,
    {
        Self::with_state(|_| Ok(()), move |_: &mut (), batch| function(batch))
    }

    /// A serving of a synchronous batch function with per-partition state.
    ///
    /// `factory(partition)` runs once per partition, on that partition's own
    /// thread, before `start` returns; the partition's calls of `function`
    /// then get `&mut` access to the state it made. Use it for resources that
    /// need exclusive access, such as an ONNX Runtime session. `inline` calls
    /// use one more state, made on first use with index `partitions`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::with_state(
    ///     |partition| Ok::<_, std::convert::Infallible>(vec![partition; 0]),
    ///     |seen: &mut Vec<usize>, b: Batch<u8>| { seen.push(b.len()); Ok(b.to_vec()) },
    /// )
    /// .partitions(2)
    /// .start()?;
    /// assert_eq!(serving.dispatch(5).await?, 5);
    /// # Ok(()) }
    /// ```
    pub fn with_state<S, Fac, F>(factory: Fac, function: F) -> Builder<I, O, E>
    where
        S: Send + 'static,
        Fac: Fn(usize) -> Result<S, E> + Send + Sync + 'static,
        F: Fn(&mut S, Batch<I>) -> Result<Vec<O>, E> + Send + Sync + 'static,
    {
        Builder::with_runner(Arc::new(SyncRunner {
            factory,
            function,
            inline_state: Mutex::new(None),
        }))
    }

    /// A serving of an asynchronous batch function, for I/O-bound work
    /// (batched database look-ups, remote calls). Each partition is a tokio
    /// task, so `partitions(n)` allows n batches in flight at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new_async(|b: Batch<u64>| async move {
    ///     Ok::<_, std::convert::Infallible>(b.iter().map(|id| format!("user-{id}")).collect())
    /// })
    /// .start()?;
    /// assert_eq!(serving.dispatch(7).await?, "user-7");
    /// # Ok(()) }
    /// ```
    pub fn new_async<F, Fut>(function: F) -> Builder<I, O, E>
    where
        F: Fn(Batch<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
    {
        Builder::with_runner(Arc::new(AsyncRunner {
            function,
            inline: None,
        }))
    }

    /// A serving of a cheap synchronous batch function (a map look-up, a
    /// sum: microseconds per batch, and never blocking) that runs on the
    /// runtime instead of a partition thread of its own.
    ///
    /// A function on its own thread costs one hand-off per batch, to that
    /// thread and back; for a nearly free function that hand-off is most of
    /// the cost of a call (`docs/benchmarks.md`, S1). Here each partition
    /// is a task on the runtime, as for [`Serving::new_async`], and the
    /// function runs inside it, so no batch crosses threads. The function
    /// then holds a runtime worker while it runs: anything that computes
    /// for long, or blocks, belongs in [`Serving::new`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new_on_runtime(|b: Batch<u64>| {
    ///     Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * 2).collect())
    /// })
    /// .start()?;
    /// assert_eq!(serving.dispatch_many(vec![1, 2]).await?, vec![2, 4]);
    /// # Ok(()) }
    /// ```
    pub fn new_on_runtime<F>(function: F) -> Builder<I, O, E>
    where
        F: Fn(Batch<I>) -> Result<Vec<O>, E> + Send + Sync + 'static,
    {
        let function: InlineFn<I, O, E> = Arc::new(function);
        let queued = Arc::clone(&function);
        // Called inside the partition's task, so that a panic is caught
        // there as for any async batch function; `inline` calls it directly.
        Builder::with_runner(Arc::new(AsyncRunner {
            function: move |batch| std::future::ready(queued(batch)),
            inline: Some(function),
        }))
    }
}

impl<I, O, E> Builder<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    fn with_runner(runner: Arc<dyn Runner<I, O, E>>) -> Self {
        Builder {
            runner,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_timeout: DEFAULT_BATCH_TIMEOUT,
            partitions: 1,
            policy: Policy::default(),
            pipeline: true,
            busy_poll: Duration::ZERO,
            queue_capacity: None,
            key_fn: None,
            weigh: None,
            max_batch_weight: None,
            cost_prior: None,
            name: Cow::Borrowed("batch-serving"),
        }
    }

    /// Most items in one batch (default 32). Must be at least 1.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(vec![b.len(); b.len()]))
    ///     .batch_size(2)
    ///     .start()?;
    /// // Three items in one call run as a batch of 2, then a batch of 1.
    /// assert_eq!(serving.dispatch_many(vec![0, 0, 0]).await?, vec![2, 2, 1]);
    /// assert_eq!(serving.batch_size(), 2);
    /// # Ok(()) }
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How long a forming batch waits for more items under the
    /// [`Policy::Timeout`] policy, counted from its first item (default 5 ms).
    ///
    /// The wait is kept to well under a millisecond, not to tokio's timer
    /// tick: tokio's timer is set a little early, and a timer thread of the
    /// kernel's resolution ends the wait at the moment itself (S1 in
    /// `docs/benchmarks.md` checks a lone call under 1 ms against its
    /// setting). It never starts a batch early.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// use std::time::Duration;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .batch_timeout(Duration::from_micros(500))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(1).await?, 1); // ran after at most 0.5 ms of waiting
    /// # Ok(()) }
    /// ```
    pub fn batch_timeout(mut self, batch_timeout: Duration) -> Self {
        self.batch_timeout = batch_timeout;
        self
    }

    /// How many batches may run at once (default 1). Must be at least 1.
    /// Each partition of a synchronous function is a thread the serving owns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(vec![b.partition() as u8; b.len()]))
    ///     .partitions(3)
    ///     .start()?;
    /// assert_eq!(serving.partitions(), 3);
    /// assert!(serving.dispatch(0).await? < 3);
    /// # Ok(()) }
    /// ```
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions;
        self
    }

    /// When batches start; see [`Policy`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// use batch_serving::Policy;
    /// // Eager: no idle wait at low load, full batches when partitions are busy.
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .policy(Policy::Eager)
    ///     .start()?;
    /// assert_eq!(serving.dispatch(4).await?, 4);
    /// # Ok(()) }
    /// ```
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether a full batch may be handed to a partition that is still
    /// running one (default `true`), so the partition starts it the moment
    /// it finishes instead of waiting for the scheduler: under load this
    /// removes a cross-thread round trip per batch (in the repository's
    /// costed-batch benchmark, it took throughput from 83% to 97% of the
    /// ideal).
    ///
    /// The batch's items still count as queued until it starts, and a call
    /// cancelled or expired before then is dropped from it and never runs.
    /// The price: once handed over, the batch's contents are fixed, so a
    /// higher-priority item arriving later waits for the batch after it.
    /// Turn pipelining off for strict priority order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let strict = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .pipeline(false)
    ///     .start()?;
    /// assert_eq!(strict.dispatch(1).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn pipeline(mut self, pipeline: bool) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// While a batch runs on a partition's thread, the scheduler polls for
    /// its answers instead of sleeping, for up to this long from the
    /// batch's start (default zero: off). Only synchronous batch functions
    /// are affected; an async one answers from the runtime, where no thread
    /// has to be woken.
    ///
    /// When a partition finishes a batch it hands the answers to the
    /// scheduler. If the scheduler's runtime worker is asleep, that hand-off
    /// is a wake-up, and the partition thread pays for it before it can
    /// start the next batch. On virtual machines a wake-up is expensive
    /// (microseconds), and it is paid once per batch. With busy polling the
    /// scheduler's worker stays awake and the hand-off is a plain push.
    /// The other way too: after a batch, the partition's thread polls for
    /// its next one for up to the same budget before it sleeps, so that the
    /// scheduler hands the next batch over without waking a thread (the
    /// callers just answered usually send their next calls within tens of
    /// microseconds).
    ///
    /// The price is one runtime worker's CPU while batches run, up to this
    /// long per batch however many calls arrive meanwhile; between polls
    /// the worker still runs every other ready task first. Choose a budget
    /// a little above your batch function's run time, and use it where a
    /// core is to spare and throughput per batch matters more than CPU: a
    /// costly function kept busy by many callers.
    /// Where cores are few and the runtime has other work while batches run
    /// (bursts of callers on two cores, say), the polling worker takes a core that the
    /// partition and the callers need, and it costs more than it saves.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .busy_poll(Duration::from_millis(1))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(1).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn busy_poll(mut self, budget: Duration) -> Self {
        self.busy_poll = budget;
        self
    }

    /// Most items waiting in the queue (default 1024 × `batch_size`).
    /// `dispatch` waits for room; `try_dispatch` fails with
    /// [`Error::Overloaded`](crate::Error::Overloaded).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .batch_size(4)
    ///     .queue_capacity(8)
    ///     .start()?;
    /// assert_eq!(serving.queue_capacity(), 8);
    /// // A call larger than the whole queue is refused at once, not queued.
    /// assert!(matches!(
    ///     serving.try_dispatch_many(vec![0; 9]).await,
    ///     Err(batch_serving::Error::Overloaded { requested: 9, capacity: 8 })
    /// ));
    /// # Ok(()) }
    /// ```
    pub fn queue_capacity(mut self, items: usize) -> Self {
        self.queue_capacity = Some(items);
        self
    }

    /// Computes each item's [`BatchKey`] in the caller's task. Items with
    /// different keys never share a batch, and each key has its own timer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// use batch_serving::BatchKey;
    /// // Words are batched with others of the same length only.
    /// let serving = Serving::new(|b: Batch<&'static str>| {
    ///     let len = b[0].len();
    ///     Ok::<_, std::convert::Infallible>(b.iter().map(|w| w.len() == len).collect())
    /// })
    /// .key_by(|word: &&str| BatchKey::from(word.len()))
    /// .start()?;
    /// let all_same = serving.dispatch_many(vec!["ab", "abc", "cd", "xyz"]).await?;
    /// assert_eq!(all_same, vec![true; 4]);
    /// # Ok(()) }
    /// ```
    pub fn key_by<K>(mut self, key_fn: K) -> Self
    where
        K: Fn(&I) -> BatchKey + Send + Sync + 'static,
    {
        self.key_fn = Some(Arc::new(key_fn));
        self
    }

    /// Shorthand for [`policy`](Self::policy)`(`[`Policy::Adaptive`]` {
    /// target })`: batch for the most throughput while each call finishes
    /// within `target`, from admission to answer, and refuse at admission
    /// the calls predicted to miss it. Must be above zero.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Policy, Serving};
    /// use std::time::Duration;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .latency_target(Duration::from_millis(50))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(3).await?, 3);
    /// assert_eq!(serving.stats().adaptive.map(|a| a.target), Some(Duration::from_millis(50)));
    /// # Ok(()) }
    /// ```
    pub fn latency_target(self, target: Duration) -> Self {
        self.policy(Policy::Adaptive { target })
    }

    /// Gives each item a weight (rows, tokens, pixels): with
    /// [`max_batch_weight`](Self::max_batch_weight) a batch is bounded by
    /// the sum of its items' weights as well as by `batch_size`, and the
    /// adaptive policy models a batch's cost by its weight. Without it
    /// every item weighs 1. The function runs in the scheduler, twice per
    /// item (as it queues and as it leaves), so it must be cheap and give
    /// the same answer each time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// // Sentences batched by their words: at most 8 words per batch.
    /// let serving = Serving::new(|b: Batch<&'static str>| {
    ///     let words: usize = b.iter().map(|s| s.split(' ').count()).sum();
    ///     Ok::<_, std::convert::Infallible>(vec![words; b.len()])
    /// })
    /// .weigh_by(|sentence: &&str| sentence.split(' ').count())
    /// .max_batch_weight(8)
    /// .start()?;
    /// let words = serving.dispatch_many(vec!["a b c", "d e f", "g h i j k l"]).await?;
    /// // The first two (6 words) share a batch; the third would pass 8.
    /// assert_eq!(words, vec![6, 6, 6]);
    /// # Ok(()) }
    /// ```
    pub fn weigh_by<W>(mut self, weigh: W) -> Self
    where
        W: Fn(&I) -> usize + Send + Sync + 'static,
    {
        self.weigh = Some(Arc::new(weigh));
        self
    }

    /// The most summed weight in one batch (see
    /// [`weigh_by`](Self::weigh_by); default: no bound but `batch_size`).
    /// An item heavier than the bound runs in a batch of its own rather
    /// than never. Must be at least 1.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<usize>| Ok::<_, std::convert::Infallible>(vec![b.len(); b.len()]))
    ///     .weigh_by(|rows: &usize| *rows)
    ///     .max_batch_weight(10)
    ///     .start()?;
    /// // 4 + 4 fit in 10; 40 runs alone; 2 starts the next batch.
    /// assert_eq!(serving.dispatch_many(vec![4, 4, 40, 2]).await?, vec![2, 2, 1, 1]);
    /// # Ok(()) }
    /// ```
    pub fn max_batch_weight(mut self, weight: usize) -> Self {
        self.max_batch_weight = Some(weight);
        self
    }

    /// What the adaptive policy assumes a batch costs before it has seen
    /// one: `fixed` per batch plus `per_weight` per unit of weight (per
    /// item, without [`weigh_by`](Self::weigh_by)). Without a prior the
    /// first batch runs unplanned and the model starts from it. The prior
    /// is a starting point only: measured batches outweigh it within a few
    /// batches.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// use std::time::Duration;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .latency_target(Duration::from_millis(20))
    ///     .cost_prior(Duration::from_millis(1), Duration::from_micros(60))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(1).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn cost_prior(mut self, fixed: Duration, per_weight: Duration) -> Self {
        self.cost_prior = Some(Line {
            fixed: fixed.as_secs_f64(),
            per_weight: per_weight.as_secs_f64(),
        });
        self
    }

    /// A name for threads and tracing spans (default `batch-serving`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| {
    ///     let thread = std::thread::current().name().unwrap_or_default().to_owned();
    ///     Ok::<_, std::convert::Infallible>(vec![thread; b.len()])
    /// })
    /// .name("resize")
    /// .start()?;
    /// assert!(serving.dispatch(0).await?.starts_with("resize"));
    /// # Ok(()) }
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the configuration, starts the partitions (running each state
    /// factory on its partition's thread) and the scheduler, and returns the
    /// handle.
    ///
    /// # Errors
    ///
    /// [`StartError::InvalidConfig`] for a zero `batch_size`, `partitions`
    /// or `queue_capacity`; [`StartError::NoRuntime`] outside a tokio
    /// runtime; [`StartError::PartitionStart`] or
    /// [`StartError::PartitionStartPanicked`] when a state factory fails;
    /// [`StartError::Spawn`] when a thread cannot be spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let bad = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .batch_size(0)
    ///     .start();
    /// assert!(matches!(bad, Err(batch_serving::StartError::InvalidConfig(_))));
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<Serving<I, O, E>, StartError<E>> {
        if self.batch_size == 0 {
            return Err(StartError::InvalidConfig("batch_size must be at least 1"));
        }
        if self.partitions == 0 {
            return Err(StartError::InvalidConfig("partitions must be at least 1"));
        }
        let capacity = match self.queue_capacity {
            Some(0) => {
                return Err(StartError::InvalidConfig(
                    "queue_capacity must be at least 1",
                ));
            }
            Some(n) => n,
            None => self.batch_size.saturating_mul(DEFAULT_QUEUE_BATCHES),
        };
        if capacity > Semaphore::MAX_PERMITS {
            return Err(StartError::InvalidConfig("queue_capacity is too large"));
        }
        if self.max_batch_weight == Some(0) {
            return Err(StartError::InvalidConfig(
                "max_batch_weight must be at least 1",
            ));
        }
        if matches!(self.policy, Policy::Adaptive { target } if target.is_zero()) {
            return Err(StartError::InvalidConfig(
                "the latency target must be above zero",
            ));
        }
        let rules = Rules {
            policy: self.policy,
            batch_size: self.batch_size,
            batch_timeout: self.batch_timeout,
            pipeline: self.pipeline,
            max_weight: self.max_batch_weight.map_or(u64::MAX, |w| w as u64),
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let runner = self.runner;
        let name: Arc<str> = Arc::from(self.name.as_ref());
        let recorder = Arc::new(Recorder::new(&self.name));
        let room = Arc::new(QueueRoom::new(capacity));
        let (batching, forecast) = Batching::new(rules, self.partitions, self.cost_prior);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut partitions = Vec::with_capacity(self.partitions);
        for index in 0..self.partitions {
            let (work, jobs) = mpsc::unbounded_channel();
            let on_deck = OnDeck::default();
            let ctx = PartitionContext {
                index,
                jobs,
                scheduler: tx.clone(),
                recorder: Arc::clone(&recorder),
                name: Arc::clone(&name),
                room: Arc::clone(&room),
                on_deck: Arc::clone(&on_deck),
                reports_runs: forecast.is_some(),
                spin_for_next: self.busy_poll,
            };
            // On failure the partitions started so far see their job
            // channels close (when `partitions` drops) and exit.
            Arc::clone(&runner).spawn(ctx, &runtime)?;
            partitions.push(PartitionLink { work, on_deck });
        }
        let scheduler = Scheduler {
            rx,
            tick: tx.downgrade(),
            partitions,
            room: Arc::clone(&room),
            recorder: Arc::clone(&recorder),
            name: Arc::clone(&name),
            off_runtime: runner.runs_off_runtime(),
            busy_poll: self.busy_poll,
            weigh: self.weigh,
            batching: Some(batching),
        };
        runtime.spawn(scheduler.run());
        Ok(Serving::from_inner(Inner {
            tx,
            room,
            batch_size: self.batch_size,
            partitions: self.partitions,
            policy: self.policy,
            batch_timeout: self.batch_timeout,
            recorder,
            runner,
            key_fn: self.key_fn,
            forecast,
        }))
    }
}
