//! The scheduler's queue: one queue per batch key, with a lane per
//! priority. Only the scheduler task touches it, so it needs no lock. It
//! stores calls and answers what is stored; when a batch is ready, and how
//! large it may be, is the policy's to say (see `engine::policy`).
//!
//! A lane keeps the order the policy asks for ([`Order`]). Earliest due
//! first: every call has a due time (its arrival plus the budget, or its
//! own deadline if sooner), and a call whose deadline is sooner than the
//! budget goes ahead of those due later. Calls without a deadline tighter
//! than the budget are due in arrival order, so they keep FIFO among
//! themselves and are pushed at the back; and since no call can be due
//! before it arrives, a call is passed over only by calls due before it, so
//! none waits for ever.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::batch::Listener;
use crate::engine::delivery::Route;
use crate::engine::policy::{Bound, Forming, Order};
use crate::key::BatchKey;
use crate::options::Priority;
use crate::policy::StartReason;
use crate::request::Request;

/// An item's weight, for batches bounded by weight (see
/// `Builder::weigh_by`); it must give the same weight each time it is asked.
pub(crate) type WeighFn<I> = Arc<dyn Fn(&I) -> usize + Send + Sync>;

/// One queued item and the call it belongs to.
#[derive(Debug)]
pub(crate) struct Entry<I, O, E> {
    pub(crate) item: I,
    pub(crate) request: Arc<Request<O, E>>,
    /// The item's position within its call (calls hold at most `u32::MAX`
    /// items: see `Inner::enqueue_all`).
    pub(crate) index: u32,
    /// When the scheduler received it (see [`Queues::stamp`]): its queue
    /// wait runs from here. Two `u32`s instead of a `usize` and an
    /// `Instant` keep every queued entry at 24 bytes for a `u64` item.
    pub(crate) queued_at: u32,
}

/// A batch taken off the queue, ready to hand to a partition.
#[derive(Debug)]
pub(crate) struct Taken<I, O, E> {
    pub(crate) key: BatchKey,
    pub(crate) items: Vec<I>,
    pub(crate) routes: Vec<Route<O, E>>,
    pub(crate) listeners: Vec<Listener>,
    /// Entries removed from the queue, live or not: the permits to release.
    pub(crate) removed: usize,
    pub(crate) reason: StartReason,
    /// The summed weight of the items taken.
    pub(crate) weight: u64,
    /// Whether the weight bound ended the batch with items left queued.
    pub(crate) cut_by_weight: bool,
}

#[derive(Debug)]
struct KeyQueue<I, O, E> {
    key: BatchKey,
    lanes: [VecDeque<Entry<I, O, E>>; Priority::LEVELS],
    len: usize,
    /// The summed weight of the entries, live or not.
    weight: u64,
    /// When the forming batch got its first item: its timer runs from here.
    forming_since: Option<Instant>,
}

impl<I, O, E> KeyQueue<I, O, E> {
    fn new(key: BatchKey) -> Self {
        KeyQueue {
            key,
            lanes: Default::default(),
            len: 0,
            weight: 0,
            forming_since: None,
        }
    }

    /// What the policy sees of it, at `now` (a queue with nothing queued
    /// forms from now).
    fn forming(&self, now: Instant) -> Forming {
        Forming {
            key: self.key,
            len: self.len,
            weight: self.weight,
            since: self.forming_since.unwrap_or(now),
        }
    }
}

pub(crate) struct Queues<I, O, E> {
    keys: Vec<KeyQueue<I, O, E>>,
    /// Index into `keys` for every key but the default, which is always 0.
    index: HashMap<BatchKey, usize>,
    len: usize,
    /// Key queues kept before empty ones are swept: busy keys keep their
    /// queue between batches, and a stream of one-off keys (shape hashes,
    /// say) cannot grow memory without bound.
    sweep_at: usize,
    /// Entries' times are microseconds since this instant.
    epoch: Instant,
    /// Each item's weight; without it every item weighs 1.
    weigh: Option<WeighFn<I>>,
    /// Weight queued since [`take_arrived`](Self::take_arrived) last ran.
    arrived: u64,
    /// How each lane is ordered.
    order: Order,
}

impl<I: std::fmt::Debug, O, E> std::fmt::Debug for Queues<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("keys", &self.keys.len())
            .field("len", &self.len)
            .field("weighed", &self.weigh.is_some())
            .finish_non_exhaustive()
    }
}

/// Key queues kept, at least, before sweeping empty ones.
const MIN_SWEEP_AT: usize = 64;

impl<I, O: Send + 'static, E: Send + Sync + 'static> Queues<I, O, E> {
    pub(crate) fn new(weigh: Option<WeighFn<I>>, order: Order) -> Self {
        Queues {
            keys: vec![KeyQueue::new(BatchKey::DEFAULT)],
            index: HashMap::new(),
            len: 0,
            sweep_at: MIN_SWEEP_AT,
            epoch: Instant::now(),
            weigh,
            arrived: 0,
            order,
        }
    }

    /// An item's weight.
    fn weight_of(&self, item: &I) -> u64 {
        self.weigh.as_ref().map_or(1, |weigh| weigh(item) as u64)
    }

    /// The weight queued since the last call.
    pub(crate) fn take_arrived(&mut self) -> u64 {
        std::mem::take(&mut self.arrived)
    }

    /// What the policy sees of key queue `at`'s forming batch.
    pub(crate) fn forming(&self, at: usize, now: Instant) -> Forming {
        self.keys[at].forming(now)
    }

    /// Among the key queues with something queued and a `verdict`, the one
    /// whose forming batch is oldest, with its verdict.
    pub(crate) fn pick<T>(
        &self,
        now: Instant,
        mut verdict: impl FnMut(&Forming) -> Option<T>,
    ) -> Option<(usize, T)> {
        let mut best: Option<(usize, T, Instant)> = None;
        for (at, queue) in self.keys.iter().enumerate() {
            if queue.len == 0 {
                continue;
            }
            let forming = queue.forming(now);
            let Some(found) = verdict(&forming) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|(_, _, oldest)| forming.since < *oldest)
            {
                best = Some((at, found, forming.since));
            }
        }
        best.map(|(at, found, _)| (at, found))
    }

    /// The earliest moment `when` gives for any key queue with something
    /// queued.
    pub(crate) fn earliest(
        &self,
        now: Instant,
        mut when: impl FnMut(&Forming) -> Option<Instant>,
    ) -> Option<Instant> {
        self.keys
            .iter()
            .filter(|queue| queue.len > 0)
            .filter_map(|queue| when(&queue.forming(now)))
            .min()
    }

    /// Microseconds until key queue `at`'s most urgent call is due, against
    /// `budget` (see [`Order::EarliestDue`]): each lane's front is its most
    /// urgent call.
    pub(crate) fn most_urgent_left(
        &self,
        at: usize,
        now: Instant,
        budget: Duration,
    ) -> Option<i64> {
        let due = self.due_clock(now, budget);
        self.keys[at]
            .lanes
            .iter()
            .filter_map(VecDeque::front)
            .map(|entry| due.left(entry))
            .min()
    }

    /// What reads entries' due times at `now`, against `budget`.
    fn due_clock(&self, now: Instant, budget: Duration) -> DueClock {
        DueClock {
            now,
            stamp_now: self.stamp(now),
            budget_us: micros(budget),
        }
    }

    /// `now` as an entry's time: microseconds since the queue's epoch, modulo
    /// 2^32. Waits are differences taken modulo 2^32 too, so they are exact
    /// up to 71 minutes, and only the queue-wait statistics read them.
    pub(crate) fn stamp(&self, now: Instant) -> u32 {
        // Truncation is the wrap-around this relies on.
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(
        &mut self,
        key: BatchKey,
        priority: Priority,
        entry: Entry<I, O, E>,
        now: Instant,
    ) {
        if key != BatchKey::DEFAULT
            && self.keys.len() >= self.sweep_at
            && !self.index.contains_key(&key)
        {
            self.sweep_empty();
        }
        let at = if key == BatchKey::DEFAULT {
            0
        } else {
            let next = self.keys.len();
            *self.index.entry(key).or_insert(next)
        };
        if at == self.keys.len() {
            self.keys.push(KeyQueue::new(key));
        }
        let weight = self.weight_of(&entry.item);
        self.arrived += weight;
        let queue = &mut self.keys[at];
        queue.weight += weight;
        if queue.len == 0 {
            // The timer starts when the first item enters an empty forming batch.
            queue.forming_since = Some(now);
        }
        let lane = &mut queue.lanes[priority.lane()];
        match self.order {
            // Due before a call that arrived now without a deadline: it goes
            // ahead of every call due after it.
            Order::EarliestDue { budget }
                if entry.request.deadline().is_some_and(|at| at < now + budget) =>
            {
                let due = DueClock {
                    now,
                    stamp_now: entry.queued_at,
                    budget_us: micros(budget),
                };
                let left = due.left(&entry);
                let behind = lane.partition_point(|queued| due.left(queued) <= left);
                lane.insert(behind, entry);
            }
            _ => lane.push_back(entry),
        }
        queue.len += 1;
        self.len += 1;
    }

    /// Takes up to `bound.items` live items, and at most `bound.weight` of
    /// weight, from key queue `at`, highest priority first, skipping (and
    /// removing) items of abandoned calls. An item heavier than
    /// `bound.weight` is taken alone: it would never fit otherwise.
    /// Each taken item's queue wait is pushed onto `waits`.
    /// With `claim`, each item is claimed for its call now; without, the
    /// partition claims them when the batch starts (see `Job::claim`).
    pub(crate) fn take(
        &mut self,
        at: usize,
        bound: Bound,
        reason: StartReason,
        now: Instant,
        claim: bool,
        waits: &mut Vec<Duration>,
    ) -> Taken<I, O, E> {
        let Bound {
            items: batch_size,
            weight: max_weight,
        } = bound;
        let stamp_now = self.stamp(now);
        let weigh = self.weigh.as_ref();
        let queue = &mut self.keys[at];
        // Not `items.capacity()` for the routes: for zero-sized items that
        // is `usize::MAX`.
        let room = batch_size.min(queue.len);
        let mut items = Vec::with_capacity(room);
        let mut routes = Vec::with_capacity(room);
        let mut listeners: Vec<Listener> = Vec::new();
        let mut removed = 0;
        let mut weight = 0u64;
        let mut removed_weight = 0u64;
        let mut cut_by_weight = false;
        'lanes: for lane in &mut queue.lanes {
            while items.len() < batch_size {
                let Some(front) = lane.front() else { break };
                let item_weight = weigh.map_or(1, |weigh| weigh(&front.item) as u64);
                if !items.is_empty()
                    && weight.saturating_add(item_weight) > max_weight
                    && !front.request.is_abandoned()
                {
                    cut_by_weight = true;
                    break 'lanes;
                }
                let Some(entry) = lane.pop_front() else { break };
                removed += 1;
                removed_weight += item_weight;
                let live = if claim {
                    entry.request.try_take()
                } else {
                    !entry.request.is_abandoned()
                };
                if !live {
                    continue;
                }
                if entry.request.is_streaming() {
                    note_listener(&mut listeners, &entry, items.len());
                }
                weight += item_weight;
                waits.push(Duration::from_micros(u64::from(
                    stamp_now.wrapping_sub(entry.queued_at),
                )));
                items.push(entry.item);
                routes.push(Route {
                    request: entry.request,
                    index: entry.index as usize,
                });
            }
        }
        queue.len -= removed;
        queue.weight = if queue.len == 0 {
            0
        } else {
            queue.weight.saturating_sub(removed_weight)
        };
        self.len -= removed;
        // Leftovers form the next batch, whose timer starts now.
        queue.forming_since = (queue.len > 0).then_some(now);
        Taken {
            key: queue.key,
            items,
            routes,
            listeners,
            removed,
            reason,
            weight,
            cut_by_weight,
        }
    }

    /// Drops the entries of abandoned calls. Returns how many were removed.
    pub(crate) fn purge_abandoned(&mut self) -> usize {
        let mut removed = 0;
        let weigh = self.weigh.as_ref();
        for queue in &mut self.keys {
            for lane in &mut queue.lanes {
                let before = lane.len();
                lane.retain(|entry| !entry.request.is_abandoned());
                removed += before - lane.len();
            }
            queue.len = queue.lanes.iter().map(VecDeque::len).sum();
            queue.weight = match weigh {
                None => queue.len as u64,
                Some(weigh) => queue
                    .lanes
                    .iter()
                    .flatten()
                    .map(|entry| weigh(&entry.item) as u64)
                    .sum(),
            };
            if queue.len == 0 {
                queue.forming_since = None;
            }
        }
        self.len -= removed;
        removed
    }

    /// Frees the queues of keys with nothing queued (never the default's),
    /// and sets the next sweep at twice the keys left, so sweeping costs
    /// O(1) amortised per new key.
    fn sweep_empty(&mut self) {
        self.keys
            .retain(|queue| queue.key == BatchKey::DEFAULT || queue.len > 0);
        self.index = self
            .keys
            .iter()
            .enumerate()
            .skip(1)
            .map(|(at, queue)| (queue.key, at))
            .collect();
        self.sweep_at = (2 * self.keys.len()).max(MIN_SWEEP_AT);
    }

    /// Removes every queued entry (when a shutdown gives up waiting).
    pub(crate) fn drain_all(&mut self) -> Vec<Entry<I, O, E>> {
        let mut all = Vec::with_capacity(self.len);
        for queue in &mut self.keys {
            for lane in &mut queue.lanes {
                all.extend(lane.drain(..));
            }
            queue.len = 0;
            queue.weight = 0;
            queue.forming_since = None;
        }
        self.len = 0;
        all
    }
}

/// Reads how long queued entries have left before they are due, at one
/// moment: the same `now` for every entry compared, so that the order of
/// their due times is exact.
#[derive(Debug, Clone, Copy)]
struct DueClock {
    now: Instant,
    stamp_now: u32,
    /// What a call may take from its arrival, in microseconds.
    budget_us: i64,
}

impl DueClock {
    /// Microseconds until `entry` is due (negative once it is late): the
    /// budget less its wait, or to its deadline if that is sooner.
    fn left<I, O, E>(&self, entry: &Entry<I, O, E>) -> i64 {
        let waited = i64::from(self.stamp_now.wrapping_sub(entry.queued_at));
        let by_budget = self.budget_us - waited;
        match entry.request.deadline() {
            Some(at) if at >= self.now => by_budget.min(micros(at - self.now)),
            Some(at) => by_budget.min(-micros(self.now - at)),
            None => by_budget,
        }
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Extends the last listener when this item continues the same call's run,
/// or starts a new one.
fn note_listener<I, O, E>(listeners: &mut Vec<Listener>, entry: &Entry<I, O, E>, position: usize)
where
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    if let Some(last) = listeners.last_mut() {
        let same_call = std::ptr::addr_eq(Arc::as_ptr(&last.sink), Arc::as_ptr(&entry.request));
        if same_call
            && last.range.end == position
            && last.offset + last.range.len() == entry.index as usize
        {
            last.range.end += 1;
            return;
        }
    }
    listeners.push(Listener {
        range: position..position + 1,
        offset: entry.index as usize,
        sink: Arc::clone(&entry.request) as Arc<dyn crate::hook::HookSink>,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight items, any weight.
    const EIGHT: Bound = Bound {
        items: 8,
        weight: u64::MAX,
    };

    fn entry(item: u64) -> Entry<u64, u64, ()> {
        Entry {
            item,
            request: Arc::new(Request::new(1, None)),
            index: 0,
            queued_at: 0,
        }
    }

    fn any(_: &Forming) -> Option<()> {
        Some(())
    }

    #[test]
    fn among_the_keys_a_verdict_passes_the_oldest_forming_batch_goes_first() {
        let mut queues: Queues<u64, u64, ()> = Queues::new(None, Order::Fifo);
        let start = Instant::now();
        let now = start + Duration::from_millis(2);
        assert!(queues.pick(now, any).is_none(), "nothing queued");
        let (young, old) = (BatchKey::new(1), BatchKey::new(2));
        queues.push(young, Priority::Normal, entry(1), now);
        queues.push(old, Priority::Normal, entry(2), start);
        let (at, ()) = queues
            .pick(now, any)
            .unwrap_or_else(|| unreachable!("two keys are queued"));
        assert_eq!(queues.keys[at].key, old);
        // A verdict that passes the old key over picks the young one.
        let (at, ()) = queues
            .pick(now, |forming| (forming.key == young).then_some(()))
            .unwrap_or_else(|| unreachable!("the young key is queued"));
        assert_eq!(queues.keys[at].key, young);
        assert_eq!(
            queues.earliest(now, |forming| Some(forming.since)),
            Some(start)
        );
    }

    #[test]
    fn leftovers_form_a_batch_whose_timer_starts_when_the_rest_left() {
        let mut queues: Queues<u64, u64, ()> = Queues::new(None, Order::Fifo);
        let start = Instant::now();
        for item in 0..10 {
            queues.push(BatchKey::DEFAULT, Priority::Normal, entry(item), start);
        }
        let later = start + Duration::from_millis(5);
        let taken = queues.take(0, EIGHT, StartReason::Full, later, true, &mut Vec::new());
        assert_eq!(taken.items.len(), 8);
        let forming = queues.forming(0, later);
        assert_eq!((forming.len, forming.weight, forming.since), (2, 2, later));
    }

    #[test]
    fn one_off_keys_do_not_grow_the_queue_without_bound() {
        let mut queues = Queues::new(None, Order::Fifo);
        let now = Instant::now();
        for id in 1..=10_000u64 {
            queues.push(BatchKey::new(id), Priority::Normal, entry(id), now);
            let (at, ()) = queues
                .pick(now, any)
                .unwrap_or_else(|| unreachable!("a queue with an item is there"));
            let taken = queues.take(at, EIGHT, StartReason::Eager, now, true, &mut Vec::new());
            assert_eq!((taken.key, taken.items), (BatchKey::new(id), vec![id]));
        }
        assert!(
            queues.keys.len() <= 2 * MIN_SWEEP_AT,
            "{} key queues kept",
            queues.keys.len()
        );
    }

    #[test]
    fn sweeping_keeps_queued_items_under_their_keys() {
        let mut queues = Queues::new(None, Order::Fifo);
        let now = Instant::now();
        // Half the keys keep an item queued while new keys keep arriving.
        for id in 1..=500u64 {
            queues.push(BatchKey::new(id), Priority::Normal, entry(id), now);
            if id % 2 == 0 {
                let at = queues.index[&BatchKey::new(id)];
                let _ = queues.take(at, EIGHT, StartReason::Full, now, true, &mut Vec::new());
            }
        }
        assert_eq!(queues.len(), 250);
        for id in (1..=500u64).step_by(2) {
            let at = queues.index[&BatchKey::new(id)];
            assert_eq!(queues.keys[at].key, BatchKey::new(id));
            let taken = queues.take(at, EIGHT, StartReason::Full, now, true, &mut Vec::new());
            assert_eq!(taken.items, vec![id]);
        }
        assert_eq!(queues.len(), 0);
    }
}
