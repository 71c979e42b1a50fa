//! The loop people write by hand: a tokio mpsc of (item, oneshot) and one
//! task that awaits the first item, then `select!`s between `recv()` and a
//! sleep of `max_wait` until the batch is full, runs the function in place
//! and answers.

use std::sync::Arc;

use futures::TryFutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{CallFuture, Contender, Setup};
use crate::workload::run_batch;

/// A call on the channel: the item and where its reply goes.
pub(crate) type Message = (u64, oneshot::Sender<u64>);

struct Textbook(mpsc::UnboundedSender<Message>);

/// The calling side of a channel of [`Message`]s, and the channel's other
/// end for whatever answers them (the textbook loop, or `crate::floor`).
pub(crate) fn channel_contender() -> (Arc<dyn Contender>, mpsc::UnboundedReceiver<Message>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Textbook(tx)), rx)
}

impl Contender for Textbook {
    fn call(&self, x: u64) -> CallFuture<'_> {
        let (tx, rx) = oneshot::channel();
        match self.0.send((x, tx)) {
            Ok(()) => Box::pin(rx.map_err(|_| "dropped".to_owned())),
            Err(_) => Box::pin(std::future::ready(Err("closed".to_owned()))),
        }
    }
}

pub(super) fn start(setup: Setup) -> Arc<dyn Contender> {
    let (contender, mut rx) = channel_contender();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let timer = tokio::time::sleep(setup.max_wait);
            tokio::pin!(timer);
            while batch.len() < setup.batch_size {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(message) => batch.push(message),
                        None => break,
                    },
                    () = &mut timer => break,
                }
            }
            let (items, replies): (Vec<u64>, Vec<_>) = batch.into_iter().unzip();
            for (reply, y) in replies
                .into_iter()
                .zip(run_batch(setup.cost, items.into_iter()))
            {
                let _ = reply.send(y);
            }
        }
    });
    contender
}
