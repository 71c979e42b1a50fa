//! One reply subscription per handle, shared by all its calls: each call
//! gets its own subject under the handle's inbox prefix, and a task hands
//! every reply to the call it names. One subscription instead of one per
//! call keeps the server's interest table small and a call's set-up free
//! of a round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::{Client, Message, SubscribeError};
use futures::StreamExt;
// futures' channel allocates per message, not a block of slots per
// channel: most calls see one reply, so a block per call would be waste.
use futures::channel::mpsc;
use tokio::task::JoinHandle;

type Table = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

pub(crate) struct Inbox {
    prefix: String,
    table: Table,
    next: AtomicU64,
    task: JoinHandle<()>,
}

/// A call's reply subject and the replies that arrive on it; dropping it
/// forgets the subject, so late replies are dropped.
pub(crate) struct Mailbox {
    pub(crate) subject: String,
    pub(crate) replies: mpsc::UnboundedReceiver<Message>,
    id: u64,
    table: Table,
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Inbox {
    pub(crate) async fn open(client: &Client) -> Result<Inbox, SubscribeError> {
        let prefix = client.new_inbox();
        let mut replies = client.subscribe(format!("{prefix}.*")).await?;
        let table: Table = Arc::default();
        let routing = Arc::clone(&table);
        let task = tokio::spawn(async move {
            while let Some(message) = replies.next().await {
                let id = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|last| last.parse::<u64>().ok());
                let Some(id) = id else { continue };
                let sender = routing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&id)
                    .cloned();
                if let Some(sender) = sender {
                    let _ = sender.unbounded_send(message);
                }
            }
        });
        Ok(Inbox {
            prefix,
            table,
            next: AtomicU64::new(1),
            task,
        })
    }

    pub(crate) fn mailbox(&self) -> Mailbox {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, replies) = mpsc::unbounded();
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sender);
        Mailbox {
            subject: format!("{}.{id}", self.prefix),
            replies,
            id,
            table: Arc::clone(&self.table),
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}
