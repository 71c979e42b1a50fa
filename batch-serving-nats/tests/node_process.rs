//! A node that dies for real: a separate process serving the name is
//! killed with SIGKILL while a call runs there. The caller gets
//! `NodeLost` by its silence limit (after the node's heartbeats stop),
//! never hangs, and a later call works on another node.
//!
//! The node process is this test binary run again with
//! `BS_CHILD_NATS_URL` set: the ignored test `child_node` serves until it
//! is killed.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use batch_serving::{Batch, Serving};
use batch_serving_nats::{Error, Node, RemoteServing};
use common::{NatsServer, connect};

const CHILD_URL: &str = "BS_CHILD_NATS_URL";

/// Run by the parent test in a child process: a node whose batches take
/// a minute, so any call to it is still running when the process dies.
#[tokio::test]
#[ignore = "the node process of a_killed_node_process_is_lost_and_later_calls_go_elsewhere"]
async fn child_node() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let serving = Serving::new_async(|batch: Batch<u32>| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, String>(batch.to_vec())
    })
    .start()
    .unwrap();
    let client = async_nats::connect(url).await.unwrap();
    let node = Node::builder(client, "mortal", serving)
        .start()
        .await
        .unwrap();
    println!("child node {} ready", node.id());
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_process_is_lost_and_later_calls_go_elsewhere() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_node", "--ignored", "--nocapture"])
        .env(CHILD_URL, server.url())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "mortal")
        .silence_limit(Duration::from_millis(800))
        .connect()
        .await
        .unwrap();
    assert_eq!(
        caller.wait_for_nodes(1, Duration::from_secs(20)).await,
        1,
        "the child node came up"
    );
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(7).await }
    });
    // Long enough for the call to be running there and heartbeats heard.
    tokio::time::sleep(batch_serving_nats::DEFAULT_HEARTBEAT * 3).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call to a killed node must not hang")
        .unwrap();
    assert!(matches!(result, Err(Error::NodeLost { .. })), "{result:?}");
    // A node in this process takes the next call.
    let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x + 1).collect()))
        .start()
        .unwrap();
    let _node = Node::builder(connect(&server).await, "mortal", serving)
        .start()
        .await
        .unwrap();
    let mut answer = Err(Error::NoAnswer);
    for _ in 0..50 {
        answer = caller.dispatch(8).await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.unwrap(), 9);
}
