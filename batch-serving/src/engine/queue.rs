//! The scheduler's queue: one queue per batch key, with a lane per
//! priority. Only the scheduler task touches it, so it needs no lock.
//!
//! A lane is FIFO, except under the adaptive policy, where it is earliest
//! deadline first: there every call has a due time (its arrival plus the
//! target, or its own deadline if sooner), and a call whose deadline is
//! sooner than the target goes ahead of those due later. Calls without a
//! deadline tighter than the target are due in arrival order, so they keep
//! FIFO among themselves and are pushed at the back as before; and since
//! no call can be due before it arrives, a call is passed over only by
//! calls due before it, so none waits for ever. A fixed policy keeps FIFO:
//! its calls without a deadline have no due time to order by, and putting
//! every deadline ahead of them could starve them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::batch::Listener;
use crate::cost_model::CostModel;
use crate::engine::adaptive::{Adaptive, Hold};
use crate::engine::delivery::Route;
use crate::key::BatchKey;
use crate::options::Priority;
use crate::policy::{Policy, StartReason};
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

/// How much one batch may hold: a count of items and a summed weight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound {
    pub(crate) items: usize,
    pub(crate) weight: u64,
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
    /// What this key's batches cost (adaptive servings only).
    model: Option<Box<CostModel>>,
}

impl<I, O, E> KeyQueue<I, O, E> {
    fn new(key: BatchKey, model: Option<CostModel>) -> Self {
        KeyQueue {
            key,
            lanes: Default::default(),
            len: 0,
            weight: 0,
            forming_since: None,
            model: model.map(Box::new),
        }
    }

    /// Whether a batch's worth is queued, by count or by weight.
    fn is_full(&self, rules: Readiness) -> bool {
        self.len >= rules.batch_size || self.weight >= rules.max_weight
    }
}

/// What an adaptive serving's queue consults: its controller, how many
/// batches are running now, and the speed of the partition that the next
/// batch goes to (see `Adaptive::speed`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steering<'a> {
    pub(crate) adaptive: &'a Adaptive,
    pub(crate) running: usize,
    pub(crate) speed: f64,
}

impl Steering<'_> {
    /// The weight cap for a key's batches under the target.
    fn cap<I, O, E>(&self, queue: &KeyQueue<I, O, E>, rules: Readiness) -> u64 {
        let Some(model) = &queue.model else {
            return rules.max_weight;
        };
        let bound = rules.max_weight.min(u64::MAX / 2) as f64;
        // Whole units: a cap of 20.8 items is 20.
        (self.adaptive.cap(model, bound, self.speed).floor() as u64).max(1)
    }
}

/// What the scheduler needs to decide whether a batch is ready.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    pub(crate) policy: Policy,
    pub(crate) batch_size: usize,
    pub(crate) batch_timeout: Duration,
    /// Whether a full batch may be handed to a busy partition ahead of time.
    pub(crate) pipeline: bool,
    /// The most weight in one batch (`u64::MAX`: bounded by count only).
    pub(crate) max_weight: u64,
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
    /// The model a new key's queue starts from (adaptive servings only).
    new_key_model: Option<CostModel>,
    /// The latency target, by which lanes are ordered earliest due first
    /// (adaptive servings only; without it lanes are FIFO).
    target: Option<Duration>,
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
    pub(crate) fn new(
        weigh: Option<WeighFn<I>>,
        model: Option<CostModel>,
        target: Option<Duration>,
    ) -> Self {
        Queues {
            keys: vec![KeyQueue::new(BatchKey::DEFAULT, model.clone())],
            index: HashMap::new(),
            len: 0,
            sweep_at: MIN_SWEEP_AT,
            epoch: Instant::now(),
            weigh,
            arrived: 0,
            new_key_model: model,
            target,
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

    /// Sets the model new keys start from (the serving's latest).
    pub(crate) fn set_new_key_model(&mut self, model: CostModel) {
        self.new_key_model = Some(model);
    }

    /// Where `key`'s queue is in `keys`, if it still has one.
    fn position(&self, key: BatchKey) -> Option<usize> {
        if key == BatchKey::DEFAULT {
            Some(0)
        } else {
            self.index.get(&key).copied()
        }
    }

    /// The cost model of `key`'s queue, if it still has one.
    pub(crate) fn model_mut(&mut self, key: BatchKey) -> Option<&mut CostModel> {
        let at = self.position(key)?;
        self.keys.get_mut(at)?.model.as_deref_mut()
    }

    /// The cost model of `key`'s queue, if it still has one.
    pub(crate) fn model_for(&self, key: BatchKey) -> Option<&CostModel> {
        let at = self.position(key)?;
        self.keys.get(at)?.model.as_deref()
    }

    /// The most weight the next batch from key queue `at` may take: the
    /// serving's bound, or under the adaptive policy the target's cap, cut
    /// shorter when the oldest queued call needs it.
    pub(crate) fn weight_cap(
        &self,
        at: usize,
        now: Instant,
        rules: Readiness,
        steering: Option<Steering<'_>>,
    ) -> u64 {
        let Some(steer) = steering else {
            return rules.max_weight;
        };
        let queue = &self.keys[at];
        let cap = steer.cap(queue, rules);
        let Some(model) = &queue.model else {
            return cap;
        };
        // With more than a batch queued, a cut would only push everyone
        // behind later and lower throughput when it is scarcest.
        if queue.weight > cap || queue.len > rules.batch_size {
            return cap;
        }
        let aim = steer.adaptive.aim();
        let due = self.due_clock(now, aim);
        // Each lane's front is its most urgent call.
        let Some(left) = self.keys[at]
            .lanes
            .iter()
            .filter_map(VecDeque::front)
            .map(|entry| due.left(entry))
            .min()
        else {
            return cap;
        };
        let (cut, _) = steer
            .adaptive
            .cut(model, left as f64 / 1e6, cap as f64, steer.speed);
        (cut.floor() as u64).clamp(1, cap)
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
            self.keys
                .push(KeyQueue::new(key, self.new_key_model.clone()));
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
        match self.target {
            // Due before a call that arrived now without a deadline: it goes
            // ahead of every call due after it.
            Some(target) if entry.request.deadline().is_some_and(|at| at < now + target) => {
                let due = DueClock {
                    now,
                    stamp_now: entry.queued_at,
                    budget_us: micros(target),
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

    /// The key queue whose batch should run next, if any is ready: among the
    /// ready ones, the one whose forming batch is oldest.
    pub(crate) fn pick_ready(
        &self,
        now: Instant,
        rules: Readiness,
        draining: bool,
        steering: Option<Steering<'_>>,
    ) -> Option<(usize, StartReason)> {
        let mut best: Option<(usize, StartReason, Instant)> = None;
        for (at, queue) in self.keys.iter().enumerate() {
            if queue.len == 0 {
                continue;
            }
            let since = queue.forming_since.unwrap_or(now);
            let reason = if queue.is_full(rules) {
                StartReason::Full
            } else if draining {
                StartReason::Drain
            } else if let Some(steer) = steering {
                if queue.weight >= steer.cap(queue, rules) {
                    StartReason::Capped
                } else {
                    match self.hold(queue, since, now, steer) {
                        Hold::No => StartReason::Eager,
                        Hold::Over => StartReason::Waited,
                        Hold::Until(_) => continue,
                    }
                }
            } else if rules.policy == Policy::Eager {
                StartReason::Eager
            } else if now >= since + rules.batch_timeout {
                StartReason::Timeout
            } else {
                continue;
            };
            if best.is_none_or(|(_, _, oldest)| since < oldest) {
                best = Some((at, reason, since));
            }
        }
        best.map(|(at, reason, _)| (at, reason))
    }

    /// Whether an adaptive key queue's forming batch waits.
    fn hold(
        &self,
        queue: &KeyQueue<I, O, E>,
        since: Instant,
        now: Instant,
        steer: Steering<'_>,
    ) -> Hold {
        match &queue.model {
            Some(model) => {
                steer
                    .adaptive
                    .hold(model, queue.weight as f64, since, now, steer.running)
            }
            None => Hold::No,
        }
    }

    /// The earliest moment a not-yet-ready forming batch times out (or,
    /// under the adaptive policy, ends its hold).
    pub(crate) fn next_timeout(
        &self,
        rules: Readiness,
        now: Instant,
        steering: Option<Steering<'_>>,
    ) -> Option<Instant> {
        if let Some(steer) = steering {
            return self
                .keys
                .iter()
                .filter(|q| q.len > 0 && !q.is_full(rules))
                .filter_map(
                    |q| match self.hold(q, q.forming_since.unwrap_or(now), now, steer) {
                        Hold::Until(at) => Some(at),
                        Hold::No | Hold::Over => None,
                    },
                )
                .min();
        }
        if rules.policy == Policy::Eager {
            return None;
        }
        self.keys
            .iter()
            .filter(|q| q.len > 0 && !q.is_full(rules))
            .filter_map(|q| q.forming_since)
            .min()
            .map(|since| since + rules.batch_timeout)
    }

    /// A key queue with a full batch (by count, or by the adaptive cap)
    /// that can be handed to a busy partition ahead of time, and why it is
    /// ready. Streaming calls go too: should a call leave before the batch
    /// starts, `Batch::retain_flagged` moves the listeners with their items.
    pub(crate) fn pick_full(
        &self,
        rules: Readiness,
        steering: Option<Steering<'_>>,
    ) -> Option<(usize, StartReason)> {
        self.keys
            .iter()
            .enumerate()
            .filter_map(|(at, q)| {
                if q.is_full(rules) {
                    Some((at, q, StartReason::Full))
                } else if steering.is_some_and(|steer| q.weight >= steer.cap(q, rules)) {
                    Some((at, q, StartReason::Capped))
                } else {
                    None
                }
            })
            .min_by_key(|(_, q, _)| q.forming_since)
            .map(|(at, _, reason)| (at, reason))
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

    fn rules(policy: Policy) -> Readiness {
        Readiness {
            policy,
            batch_size: 4,
            batch_timeout: Duration::from_millis(10),
            pipeline: false,
            max_weight: u64::MAX,
        }
    }

    fn reason(picked: Option<(usize, StartReason)>) -> Option<&'static str> {
        picked.map(|(_, reason)| reason.as_str())
    }

    #[test]
    fn a_timeout_batch_is_ready_when_full_at_its_timeout_or_when_draining() {
        let mut queues: Queues<u64, u64, ()> = Queues::new(None, None, None);
        let start = Instant::now();
        let timeout = rules(Policy::Timeout);
        assert_eq!(
            queues
                .pick_ready(start, timeout, false, None)
                .map(|(at, _)| at),
            None
        );
        assert_eq!(
            queues.next_timeout(timeout, start, None),
            None,
            "nothing forming"
        );
        queues.push(BatchKey::DEFAULT, Priority::Normal, entry(1), start);
        let later = start + Duration::from_millis(3);
        queues.push(BatchKey::DEFAULT, Priority::Normal, entry(2), later);
        // The timer runs from the first item, not the latest.
        assert_eq!(
            queues.next_timeout(timeout, start, None),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(reason(queues.pick_ready(later, timeout, false, None)), None);
        assert_eq!(
            reason(queues.pick_ready(later, timeout, true, None)),
            Some("drain")
        );
        let due = start + Duration::from_millis(10);
        assert_eq!(
            reason(queues.pick_ready(due, timeout, false, None)),
            Some("timeout")
        );
        for item in 3..=4 {
            queues.push(BatchKey::DEFAULT, Priority::Normal, entry(item), later);
        }
        assert_eq!(
            reason(queues.pick_ready(later, timeout, false, None)),
            Some("full")
        );
        assert_eq!(
            queues.next_timeout(timeout, start, None),
            None,
            "a full batch waits for no timer"
        );
    }

    #[test]
    fn eager_batches_are_ready_at_once_and_set_no_timer() {
        let mut queues: Queues<u64, u64, ()> = Queues::new(None, None, None);
        let now = Instant::now();
        queues.push(BatchKey::DEFAULT, Priority::Normal, entry(1), now);
        let eager = rules(Policy::Eager);
        assert_eq!(
            reason(queues.pick_ready(now, eager, false, None)),
            Some("eager")
        );
        assert_eq!(queues.next_timeout(eager, now, None), None);
    }

    #[test]
    fn among_ready_keys_the_oldest_forming_batch_goes_first() {
        let mut queues: Queues<u64, u64, ()> = Queues::new(None, None, None);
        let start = Instant::now();
        let (young, old) = (BatchKey::new(1), BatchKey::new(2));
        queues.push(
            young,
            Priority::Normal,
            entry(1),
            start + Duration::from_millis(2),
        );
        queues.push(old, Priority::Normal, entry(2), start);
        let eager = rules(Policy::Eager);
        let (at, _) = queues
            .pick_ready(start + Duration::from_millis(2), eager, false, None)
            .unwrap_or_else(|| unreachable!("two eager keys are queued"));
        assert_eq!(queues.keys[at].key, old);
        let timeout = rules(Policy::Timeout);
        assert_eq!(
            queues.next_timeout(timeout, start, None),
            Some(start + Duration::from_millis(10))
        );
    }

    #[test]
    fn one_off_keys_do_not_grow_the_queue_without_bound() {
        let mut queues = Queues::new(None, None, None);
        let now = Instant::now();
        for id in 1..=10_000u64 {
            queues.push(BatchKey::new(id), Priority::Normal, entry(id), now);
            let (at, reason) = queues
                .pick_ready(
                    now,
                    Readiness {
                        policy: Policy::Eager,
                        batch_size: 8,
                        batch_timeout: Duration::ZERO,
                        pipeline: false,
                        max_weight: u64::MAX,
                    },
                    false,
                    None,
                )
                .unwrap_or_else(|| unreachable!("an eager queue with an item is ready"));
            let taken = queues.take(at, EIGHT, reason, now, true, &mut Vec::new());
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
        let mut queues = Queues::new(None, None, None);
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
