//! What a remote streaming call yields, and its conversion into the core's
//! [`Event`], so that code written for a local stream takes a remote one.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use batch_serving::{Event, Hook};
use bytes::Bytes;

/// What a remote streaming call yields. `Event::from` turns it into the
/// core's [`Event`] without loss: a hook keeps its name and item, and its
/// payload is the [`Bytes`] the node's hook encoder wrote.
///
/// ```
/// use batch_serving::Event;
/// use batch_serving_nats::RemoteEvent;
/// let remote = RemoteEvent::<u32>::Hook { name: "tokens".into(), item: Some(1), payload: "4".into() };
/// let Event::Hook(hook) = Event::from(remote) else { unreachable!() };
/// assert_eq!((hook.name, hook.item), ("tokens", Some(1)));
/// assert_eq!(hook.payload::<bytes::Bytes>().map(|b| &b[..]), Some(&b"4"[..]));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RemoteEvent<O> {
    /// Outputs of one executed piece, starting at `offset` in the call.
    Output {
        /// Index of the first output's item in the call.
        offset: usize,
        /// The piece's outputs, in order.
        outputs: Vec<O>,
    },
    /// A hook event of the batch function, about the call's items.
    Hook {
        /// The hook's name.
        name: String,
        /// The item it is about, when it is about one.
        item: Option<usize>,
        /// Its payload as the node's hook encoder wrote it (empty without
        /// one).
        payload: Bytes,
    },
}

impl<O> From<RemoteEvent<O>> for Event<O> {
    fn from(event: RemoteEvent<O>) -> Self {
        match event {
            RemoteEvent::Output { offset, outputs } => Event::Output { offset, outputs },
            RemoteEvent::Hook {
                name,
                item,
                payload,
            } => Event::Hook(Hook::relayed(intern(&name), item, payload)),
        }
    }
}

/// Distinct hook names kept for the life of the process. A batch function
/// names its hooks with string literals, so a node sends a handful; the
/// bound stops a hostile node from growing this set without end.
const MAX_NAMES: usize = 1024;

/// The name a hook gets once [`MAX_NAMES`] are kept.
const TOO_MANY: &str = "(hook name not kept: too many distinct names)";

/// A hook's name as the core's `&'static str`: each distinct name is leaked
/// once and reused after.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(kept) = names.get(name) {
        return kept;
    }
    if names.len() >= MAX_NAMES {
        return TOO_MANY;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_once_and_bounded() {
        let first = intern("a-name-for-this-test");
        let again = intern(&String::from("a-name-for-this-test"));
        assert!(std::ptr::eq(first, again), "one copy per name");
        for i in 0..MAX_NAMES + 1 {
            let _ = intern(&format!("flood-{i}"));
        }
        assert_eq!(intern("one-more-after-the-flood"), TOO_MANY);
        assert_eq!(intern("a-name-for-this-test"), "a-name-for-this-test");
    }
}
