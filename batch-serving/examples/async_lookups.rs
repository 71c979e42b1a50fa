//! An asynchronous batch function: many callers each ask for one user, and
//! the serving turns calls that arrive together into one batched look-up
//! (one `WHERE id IN (...)` instead of one query per caller). Each
//! partition is a tokio task, so an I/O-bound function costs no thread.
//!
//! ```text
//! cargo run -p batch-serving --example async_lookups
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};

/// Stands in for a database: one round trip answers many ids.
struct Database {
    users: HashMap<u32, String>,
    round_trips: AtomicUsize,
}

impl Database {
    async fn users_by_id(&self, ids: &[u32]) -> Result<Vec<Option<String>>, String> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await; // the network
        Ok(ids.iter().map(|id| self.users.get(id).cloned()).collect())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = Arc::new(Database {
        users: (0..100).map(|id| (id, format!("user-{id}"))).collect(),
        round_trips: AtomicUsize::new(0),
    });
    let db = Arc::clone(&database);
    let users = Serving::new_async(move |batch: Batch<u32>| {
        let db = Arc::clone(&db);
        async move { db.users_by_id(&batch).await }
    })
    .batch_size(50)
    .policy(Policy::Eager)
    .start()?;

    let lookups = (0..200u32).map(|id| users.dispatch(id % 120));
    let found = futures::future::try_join_all(lookups).await?;
    assert_eq!(found[7].as_deref(), Some("user-7"));
    assert_eq!(found[110], None); // unknown ids answer None, only for their caller
    println!(
        "200 look-ups in {} round trips",
        database.round_trips.load(Ordering::Relaxed)
    );
    users.shutdown().await;
    Ok(())
}
