//! A tracing layer that records every span, for tests that read the batch
//! span's fields.
//!
//! It is installed once as the global subscriber and tags each span with
//! the thread that made it, so tests on parallel threads (each on a
//! current-thread runtime) read their own. A per-thread default subscriber
//! would not do: tracing caches whether a callsite is enabled across
//! threads, and a test thread without one can switch the batch span off
//! for a test that has one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Debug, Default, Clone)]
pub struct SpanRecord {
    pub name: &'static str,
    pub thread: Option<ThreadId>,
    /// In the order the spans were created.
    pub seq: usize,
    pub fields: HashMap<String, String>,
    pub follows_from: Vec<u64>,
}

/// Records every span's fields, later `record`s and follows-from links,
/// by span id. Ids of closed spans may be reused, so a span that closes is
/// kept under its sequence number instead.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Spans>>);

/// The spans made on one test's thread.
#[derive(Debug, Clone)]
pub struct Captured {
    recorder: Recorder,
    thread: ThreadId,
    from: usize,
}

#[derive(Debug, Default)]
pub struct Spans {
    pub open: HashMap<u64, SpanRecord>,
    pub closed: Vec<SpanRecord>,
    created: usize,
    /// The threads whose spans are kept.
    capturing: Vec<ThreadId>,
}

impl Captured {
    /// The spans this thread makes from now on.
    pub fn install() -> Captured {
        static GLOBAL: OnceLock<Recorder> = OnceLock::new();
        let recorder = GLOBAL
            .get_or_init(|| {
                let recorder = Recorder::default();
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(recorder.clone()),
                )
                .unwrap();
                recorder
            })
            .clone();
        let thread = std::thread::current().id();
        let from = {
            let mut spans = recorder.0.lock().unwrap();
            spans.capturing.push(thread);
            spans.created
        };
        Captured {
            recorder,
            thread,
            from,
        }
    }

    /// Every span of this thread so far, open or closed.
    pub fn all(&self) -> Vec<SpanRecord> {
        let spans = self.recorder.0.lock().unwrap();
        let mut all: Vec<SpanRecord> = spans
            .open
            .values()
            .chain(&spans.closed)
            .filter(|span| span.thread == Some(self.thread) && span.seq >= self.from)
            .cloned()
            .collect();
        all.sort_by_key(|span| span.seq);
        all
    }

    /// The spans named `name`, oldest first.
    pub fn in_order(&self, name: &str) -> Vec<SpanRecord> {
        self.all().into_iter().filter(|s| s.name == name).collect()
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        let thread = std::thread::current().id();
        if !spans.capturing.contains(&thread) {
            return;
        }
        let mut record = SpanRecord {
            name: attrs.metadata().name(),
            thread: Some(thread),
            seq: spans.created,
            ..SpanRecord::default()
        };
        spans.created += 1;
        attrs.record(&mut Fields(&mut record.fields));
        spans.open.insert(id.into_u64(), record);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(record) = self.0.lock().unwrap().open.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut record.fields));
        }
    }
    fn on_follows_from(&self, span: &Id, follows: &Id, _: Context<'_, S>) {
        if let Some(record) = self.0.lock().unwrap().open.get_mut(&span.into_u64()) {
            record.follows_from.push(follows.into_u64());
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(record) = spans.open.remove(&id.into_u64()) {
            spans.closed.push(record);
        }
    }
}
