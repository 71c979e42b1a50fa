//! Shared test helpers: a fake batch function with switchable behaviour and
//! a gate that holds partitions inside a batch until the test opens it.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod spans;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use batch_serving::{Batch, BatchKey, Builder, Serving};

/// The fake's error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError(pub &'static str);

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// What the fake does with its next batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers `x + 1` for each item.
    Ok,
    /// Returns `Err`.
    Error,
    /// Panics.
    Panic,
    /// Returns one output too few.
    WrongCount,
    /// Blocks until the gate opens, then answers like `Ok`.
    Block,
}

/// Blocks partition threads until opened.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    pub fn close(&self) {
        *self.open.lock().unwrap() = false;
    }

    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

/// A batch function that records every batch it runs.
#[derive(Debug, Clone)]
pub struct Fake {
    pub batches: Arc<Mutex<Vec<Vec<u64>>>>,
    pub keys: Arc<Mutex<Vec<BatchKey>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    pub gate: Arc<Gate>,
    started: Arc<AtomicUsize>,
}

impl Fake {
    pub fn new() -> Self {
        Fake {
            batches: Arc::default(),
            keys: Arc::default(),
            behaviour: Arc::new(Mutex::new(Behaviour::Ok)),
            gate: Arc::default(),
            started: Arc::default(),
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        if behaviour == Behaviour::Block {
            self.gate.close();
        }
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Batches that have entered the function (including blocked ones).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn recorded(&self) -> Vec<Vec<u64>> {
        self.batches.lock().unwrap().clone()
    }

    pub fn all_items(&self) -> Vec<u64> {
        self.recorded().into_iter().flatten().collect()
    }

    pub fn run(&self, batch: Batch<u64>) -> Result<Vec<u64>, FakeError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let behaviour = *self.behaviour.lock().unwrap();
        if behaviour == Behaviour::Block {
            self.gate.wait();
        }
        self.batches.lock().unwrap().push(batch.to_vec());
        self.keys.lock().unwrap().push(batch.key());
        match behaviour {
            Behaviour::Ok | Behaviour::Block => Ok(batch.iter().map(|x| x + 1).collect()),
            Behaviour::Error => Err(FakeError("fake failure")),
            Behaviour::Panic => panic!("fake panic"),
            Behaviour::WrongCount => Ok(batch.iter().skip(1).map(|x| x + 1).collect()),
        }
    }

    /// A builder serving this fake on partition threads.
    pub fn builder(&self) -> Builder<u64, u64, FakeError> {
        let fake = self.clone();
        Serving::new(move |batch| fake.run(batch))
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Never leave a partition thread blocked behind a test that ended.
        if Arc::strong_count(&self.gate) == 1 {
            self.gate.open();
        }
    }
}

/// Yields to other tasks until `condition` holds (partition threads run in
/// real time, so the test spins on the scheduler rather than sleeping).
pub async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    panic!("condition never held");
}

/// Runs `serving.dispatch(item)` as its own task, like an independent caller.
pub fn spawn_dispatch<E: Send + Sync + 'static>(
    serving: &Serving<u64, u64, E>,
    item: u64,
) -> tokio::task::JoinHandle<Result<u64, batch_serving::Error<E>>> {
    let serving = serving.clone();
    tokio::spawn(async move { serving.dispatch(item).await })
}

/// Holds the serving's only free partition inside a blocked batch (item 0)
/// until `fake.gate` opens; returns that batch's caller.
pub async fn occupy_partition(
    fake: &Fake,
    serving: &Serving<u64, u64, FakeError>,
) -> tokio::task::JoinHandle<Result<u64, batch_serving::Error<FakeError>>> {
    fake.set(Behaviour::Block);
    let blocker = spawn_dispatch(serving, 0);
    until(|| fake.started() == 1).await;
    blocker
}
