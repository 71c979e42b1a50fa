//! The load: callers that come and go (1 to `max_callers` at a time), each
//! making a random mix of calls against whichever serving is current, and a
//! controller that restarts the serving now and then under load.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use batch_serving::{CallOptions, Error, Event, Serving};
use futures::StreamExt;

use super::function::{Faulty, InjectedFault};
use super::{CallLedger, FaultRates, SoakItem, Tally};

type SoakServing = Serving<SoakItem, u64, String>;

/// The shape of the load.
#[derive(Debug, Clone)]
pub struct Load {
    /// Run at least this long.
    pub duration: Duration,
    /// And make at least this many calls.
    pub min_calls: u64,
    /// The most callers at once.
    pub max_callers: usize,
    /// Shut the serving down (under load) and start a new one this often.
    pub restart_every: Duration,
    /// Faults carried by calls.
    pub faults: FaultRates,
}

/// One serving's life, with what the runner saw of it, to check its
/// counters once everything has settled.
#[derive(Debug)]
pub struct Instance {
    /// The serving.
    pub serving: SoakServing,
    /// What its batch function counted.
    pub function: Arc<Faulty>,
    /// Calls answered `DeadlineExceeded` by it.
    pub expired: AtomicU64,
    /// Calls answered `Overloaded` by it.
    pub overloaded: AtomicU64,
    /// Calls answered `Closed` by it.
    pub closed: AtomicU64,
    /// Calls dropped mid-flight on it.
    pub dropped: AtomicU64,
    /// Calls whose caller left (dropped or expired), with how many of their
    /// items had run then: checked again once the serving has shut down,
    /// when no batch of it can still run, then let go.
    left: Mutex<Vec<(Arc<CallLedger>, usize)>>,
}

/// Instances started so far: every other one busy-polls, so the soak's
/// restarts, faults and shutdowns cover both ways the scheduler waits.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Starts a serving whose batch function is [`Faulty`].
///
/// # Panics
///
/// If the serving cannot start (a valid fixed configuration).
pub fn start_instance() -> Arc<Instance> {
    let busy_poll = if STARTED.fetch_add(1, Relaxed) % 2 == 1 {
        Duration::from_micros(500)
    } else {
        Duration::ZERO
    };
    let function = Arc::new(Faulty::default());
    let state = Arc::clone(&function);
    let serving = Serving::with_state(
        move |_| Ok::<_, String>(Arc::clone(&state)),
        |f: &mut Arc<Faulty>, batch| f.run(batch),
    )
    .batch_size(32)
    .batch_timeout(Duration::from_millis(1))
    .partitions(2)
    .queue_capacity(8192)
    .busy_poll(busy_poll)
    .key_by(SoakItem::key)
    .name("soak")
    .start()
    .unwrap_or_else(|e| panic!("the soak serving did not start: {e}"));
    Arc::new(Instance {
        serving,
        function,
        expired: AtomicU64::new(0),
        overloaded: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        left: Mutex::new(Vec::new()),
    })
}

/// What the run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Every serving started, in order.
    pub instances: Vec<Arc<Instance>>,
    /// The tallies.
    pub tally: Arc<Tally>,
    /// How long the load ran.
    pub elapsed: Duration,
    /// Resident memory right after each restart (old serving shut down),
    /// in bytes: the first is the warm-up's end; the rest must not climb.
    pub rss_at_restarts: Vec<u64>,
}

struct Shared {
    current: RwLock<Arc<Instance>>,
    instances: Mutex<Vec<Arc<Instance>>>,
    tally: Arc<Tally>,
    next_value: AtomicU64,
    target_callers: AtomicUsize,
    stop: AtomicBool,
    faults: FaultRates,
}

/// Runs the load and returns what it saw. Every serving is shut down and
/// every caller has finished when it returns.
pub async fn run(load: Load, rss: impl Fn() -> u64) -> Outcome {
    let first = start_instance();
    let shared = Arc::new(Shared {
        current: RwLock::new(Arc::clone(&first)),
        instances: Mutex::new(vec![first]),
        tally: Arc::new(Tally::default()),
        next_value: AtomicU64::new(0),
        target_callers: AtomicUsize::new(1),
        stop: AtomicBool::new(false),
        faults: load.faults,
    });
    let callers: Vec<_> = (0..load.max_callers)
        .map(|id| tokio::spawn(caller(Arc::clone(&shared), id)))
        .collect();
    let started = Instant::now();
    // The number of callers changes every second, through a fixed cycle
    // that spans 1 to `max_callers`.
    let cycle = [1usize, 64, 2000, 8, 500, 1, 1000, 200, 32, 1500];
    let (mut last_restart, mut rss_at_restarts, mut step) = (Instant::now(), Vec::new(), 0);
    while started.elapsed() < load.duration || shared.tally.calls.load(Relaxed) < load.min_calls {
        let target = cycle[step % cycle.len()].min(load.max_callers);
        shared.target_callers.store(target, Relaxed);
        step += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if last_restart.elapsed() >= load.restart_every {
            restart(&shared).await;
            rss_at_restarts.push(rss());
            last_restart = Instant::now();
        }
    }
    shared.stop.store(true, Relaxed);
    for caller in callers {
        let _ = caller.await;
    }
    let elapsed = started.elapsed();
    let last = Arc::clone(&read(&shared.current));
    last.serving.shutdown().await;
    recheck_left(&last, &shared.tally);
    let instances = shared
        .instances
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Outcome {
        instances,
        tally: Arc::clone(&shared.tally),
        elapsed,
        rss_at_restarts,
    }
}

fn read(current: &RwLock<Arc<Instance>>) -> Arc<Instance> {
    Arc::clone(&current.read().unwrap_or_else(PoisonError::into_inner))
}

/// Swaps in a new serving, then shuts the old one down with a limit while
/// calls are still arriving on it.
async fn restart(shared: &Shared) {
    let fresh = start_instance();
    shared
        .instances
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&fresh));
    let old = std::mem::replace(
        &mut *shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner),
        fresh,
    );
    let _ = old
        .serving
        .shutdown_timeout(Duration::from_millis(200))
        .await;
    // Calls still running on the old serving are settled by now: it has
    // shut down, and a call that raced the swap ended with `Closed`.
    recheck_left(&old, &shared.tally);
}

fn recheck_left(instance: &Instance, tally: &Tally) {
    let left = std::mem::take(&mut *instance.left.lock().unwrap_or_else(PoisonError::into_inner));
    for (ledger, ran_when_left) in left {
        if ledger.ran_twice() > 0 {
            tally.violate("an item ran twice", format!("{ledger:?}"));
        }
        let after = ledger.ran().saturating_sub(ran_when_left);
        tally.ran_after_leaving.fetch_add(after as u64, Relaxed);
    }
}

/// A small, fast generator for each caller's choices.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    One,
    Many,
    Stream,
    TryOne,
    Deadline,
    Drop,
}

impl Kind {
    fn pick(dice: &mut Dice) -> Self {
        match dice.below(100) {
            0..50 => Self::One,
            50..65 => Self::Many,
            65..75 => Self::Stream,
            75..85 => Self::TryOne,
            85..93 => Self::Deadline,
            _ => Self::Drop,
        }
    }
}

async fn caller(shared: Arc<Shared>, id: usize) {
    let mut dice = Dice(id as u64 * 7919 + 1);
    while !shared.stop.load(Relaxed) {
        if id >= shared.target_callers.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let kind = Kind::pick(&mut dice);
        let len = match kind {
            Kind::Many => 2 + dice.below(99) as usize, // up to 100: splits past 32
            Kind::Stream => 2 + dice.below(63) as usize,
            Kind::Drop => 1 + dice.below(40) as usize,
            _ => 1,
        };
        let plan = shared.faults.plan(dice.unit());
        let first = shared.next_value.fetch_add(len as u64, Relaxed);
        let ledger = Arc::new(CallLedger::new(len));
        let items: Vec<SoakItem> = (0..len)
            .map(|i| SoakItem {
                value: first + i as u64,
                index: i as u32,
                plan,
                ledger: Arc::clone(&ledger),
            })
            .collect();
        shared.tally.calls.fetch_add(1, Relaxed);
        shared.tally.items.fetch_add(len as u64, Relaxed);
        let instance = read(&shared.current);
        let call = Call {
            shared: &shared,
            instance: &instance,
            ledger: &ledger,
            first,
            len,
            kind,
        };
        // No call may hang: even a deadline call ends within its deadline,
        // and a normal one within the time a restart takes plus margin.
        let bound = Duration::from_secs(30);
        let jitter = Duration::from_micros(dice.below(3000));
        if tokio::time::timeout(bound, call.make(items, jitter))
            .await
            .is_err()
        {
            shared
                .tally
                .violate("a caller hung", format!("{kind:?} call of {len} item(s)"));
        }
    }
}

struct Call<'a> {
    shared: &'a Shared,
    instance: &'a Instance,
    ledger: &'a Arc<CallLedger>,
    first: u64,
    len: usize,
    kind: Kind,
}

impl Call<'_> {
    async fn make(&self, items: Vec<SoakItem>, jitter: Duration) {
        let serving = &self.instance.serving;
        let result = match self.kind {
            Kind::One => serving.dispatch(first(items)).await.map(|y| vec![y]),
            Kind::TryOne => serving.try_dispatch(first(items)).await.map(|y| vec![y]),
            Kind::Many => serving.dispatch_many(items).await,
            Kind::Deadline => {
                let options = CallOptions::new().timeout(jitter);
                serving
                    .dispatch_with(first(items), options)
                    .await
                    .map(|y| vec![y])
            }
            Kind::Stream => self.stream(items).await,
            Kind::Drop => {
                tokio::select! {
                    result = serving.dispatch_many(items) => result,
                    () = tokio::time::sleep(jitter) => {
                        self.instance.dropped.fetch_add(1, Relaxed);
                        self.shared.tally.dropped.fetch_add(1, Relaxed);
                        self.leave();
                        return;
                    }
                }
            }
        };
        self.check(result);
    }

    async fn stream(&self, items: Vec<SoakItem>) -> Result<Vec<u64>, Error<String>> {
        let mut outputs: Vec<Option<u64>> = vec![None; items.len()];
        let mut events = self.instance.serving.dispatch_stream(items);
        while let Some(event) = events.next().await {
            if let Event::Output {
                offset,
                outputs: piece,
            } = event?
            {
                for (i, y) in piece.into_iter().enumerate() {
                    if outputs[offset + i].replace(y).is_some() {
                        self.shared.tally.violate(
                            "a stream answered an item twice",
                            format!("item {}", offset + i),
                        );
                    }
                }
            }
        }
        Ok(outputs.into_iter().flatten().collect())
    }

    fn leave(&self) {
        self.instance
            .left
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Arc::clone(self.ledger), self.ledger.ran()));
    }

    fn check(&self, result: Result<Vec<u64>, Error<String>>) {
        let tally = &self.shared.tally;
        let faults = self.ledger.faults.load(Relaxed);
        let explained = |bit: u8| faults & bit != 0;
        if self.ledger.ran_twice() > 0 {
            tally.violate("an item ran twice", format!("{:?} call", self.kind));
        }
        match result {
            Ok(outputs) => {
                let expected: Vec<u64> = (0..self.len as u64).map(|i| self.first + i + 1).collect();
                if outputs != expected {
                    tally.violate(
                        "wrong outputs",
                        format!("{:?}: {outputs:?} for {expected:?}", self.kind),
                    );
                } else if faults != 0 {
                    tally.violate(
                        "answered although a batch of it failed",
                        format!("{:?}", self.kind),
                    );
                } else {
                    tally.ok.fetch_add(1, Relaxed);
                }
            }
            Err(Error::Batch(_)) if explained(InjectedFault::ERROR) => {
                tally.faulted.fetch_add(1, Relaxed);
            }
            Err(Error::Panicked { .. }) if explained(InjectedFault::PANIC) => {
                tally.faulted.fetch_add(1, Relaxed);
            }
            Err(Error::WrongOutputCount { .. }) if explained(InjectedFault::WRONG_COUNT) => {
                tally.faulted.fetch_add(1, Relaxed);
            }
            Err(Error::DeadlineExceeded) if self.kind == Kind::Deadline => {
                self.instance.expired.fetch_add(1, Relaxed);
                tally.expired.fetch_add(1, Relaxed);
                self.leave();
            }
            Err(Error::Overloaded { .. }) if self.kind == Kind::TryOne => {
                self.instance.overloaded.fetch_add(1, Relaxed);
                tally.overloaded.fetch_add(1, Relaxed);
            }
            Err(Error::Closed) if self.instance.serving.is_closed() => {
                self.instance.closed.fetch_add(1, Relaxed);
                tally.closed.fetch_add(1, Relaxed);
            }
            Err(error) => tally.violate(
                "an error its faults do not explain",
                format!("{:?} call, faults {faults:#b}: {error}", self.kind),
            ),
        }
    }
}

fn first(mut items: Vec<SoakItem>) -> SoakItem {
    items.swap_remove(0)
}
