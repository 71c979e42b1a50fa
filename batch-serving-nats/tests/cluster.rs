//! Nodes and callers on a real nats-server: batching across machines, the
//! verbs, routing, and every fault the crate promises to handle. Each test
//! starts its own server on a free port (see `common`), so it can kill and
//! restart it. Times here are real (NATS is a real process), so nothing is
//! asserted about how long anything takes: a fault test asserts which
//! error came, and bounds the whole test so that a hang fails it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use batch_serving::{Batch, CallOptions, Serving};
use batch_serving_nats::{Dispatch, Error, Node, RawBytes, RemoteEvent, RemoteServing, protocol};
use common::{NatsServer, bounded, connect, eventually, gated, past_a_heartbeat};
use futures::StreamExt;

async fn remote(server: &NatsServer) -> RemoteServing<u32, u32> {
    RemoteServing::builder(connect(server).await, "sq")
        .silence_limit(Duration::from_millis(800))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_calls_batch_with_local_calls_on_the_node() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // A batch of 8 runs only when 8 items are there (the timeout is far
    // away), so one batch of 8 proves remote and local items shared it.
    let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * x).collect()))
        .batch_size(8)
        .batch_timeout(Duration::from_secs(20))
        .start()
        .unwrap();
    let _node = Node::builder(connect(&server).await, "sq", serving.clone())
        .start()
        .await
        .unwrap();
    let remote = remote(&server).await;
    let calls: Vec<_> = (0..8u32)
        .map(|i| {
            let (local, remote) = (serving.clone(), remote.clone());
            tokio::spawn(async move {
                match i % 2 {
                    0 => local.dispatch(i).await.map_err(Error::from),
                    _ => remote.dispatch(i).await,
                }
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(
            bounded("call", call).await.unwrap().unwrap(),
            (i * i) as u32
        );
    }
    let stats = serving.stats();
    assert_eq!((stats.batches, stats.items), (1, 8), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_works_remotely_as_locally_through_one_trait() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let node_serving = gated(4, 64, true);
    let _node = Node::builder(connect(&server).await, "sq", node_serving.serving.clone())
        .hook_encoder(|hook| hook.payload::<usize>().map(|n| n.to_be_bytes().to_vec()))
        .start()
        .await
        .unwrap();
    let remote = remote(&server).await;
    let local = gated(4, 64, true).serving;
    let servings: [&dyn Dispatch<u32, u32>; 2] = [&local, &remote];
    for serving in servings {
        assert_eq!(bounded("one", serving.dispatch(7)).await.unwrap(), 49);
        assert_eq!(
            bounded("many", serving.dispatch_many(vec![1, 2, 3, 4, 5, 6]))
                .await
                .unwrap(),
            [1, 4, 9, 16, 25, 36]
        );
        assert!(
            bounded("none", serving.dispatch_many(Vec::new()))
                .await
                .unwrap()
                .is_empty()
        );
    }
    // A stream of 6 items in batches of 4: pieces at offsets 0 and 4 with
    // their outputs, the hooks with their payloads, then the end.
    let events: Vec<_> = bounded(
        "stream",
        remote.dispatch_stream(vec![1, 2, 3, 4, 5, 6]).collect(),
    )
    .await;
    let mut outputs = vec![0; 6];
    let mut hooks = Vec::new();
    for event in events {
        match event.unwrap() {
            RemoteEvent::Output {
                offset,
                outputs: piece,
            } => {
                outputs[offset..offset + piece.len()].copy_from_slice(&piece);
            }
            RemoteEvent::Hook { name, payload, .. } => {
                assert_eq!(name, "batch_len");
                hooks.push(usize::from_be_bytes(payload[..].try_into().unwrap()));
            }
            _ => unreachable!("no other event kind is sent"),
        }
    }
    assert_eq!(outputs, [1, 4, 9, 16, 25, 36]);
    hooks.sort_unstable();
    assert_eq!(hooks, [2, 4]);
    // The same stream as the core's events, beside a local stream of the
    // same items: the same pieces and hook names, so code written for a
    // local stream reads a remote one.
    let shape = |events: Vec<batch_serving::Event<u32>>| {
        let mut shape: Vec<String> = events
            .into_iter()
            .map(|event| match event {
                batch_serving::Event::Output { offset, outputs } => {
                    format!("{offset}: {outputs:?}")
                }
                batch_serving::Event::Hook(hook) => format!("{} {:?}", hook.name, hook.item),
            })
            .collect();
        shape.sort();
        shape
    };
    let remote_events: Vec<batch_serving::Event<u32>> = bounded(
        "converted stream",
        remote
            .dispatch_stream(vec![1, 2, 3, 4, 5, 6])
            .map(|event| batch_serving::Event::from(event.unwrap()))
            .collect(),
    )
    .await;
    let local_events: Vec<batch_serving::Event<u32>> = bounded(
        "local stream",
        node_serving
            .serving
            .dispatch_stream(vec![1, 2, 3, 4, 5, 6])
            .map(|event| event.unwrap())
            .collect(),
    )
    .await;
    assert_eq!(shape(remote_events), shape(local_events));
    // The node reports its capacity and load through $SRV.STATS.
    assert_eq!(remote.wait_for_nodes(1, Duration::from_secs(10)).await, 1);
    let report = &remote.nodes()[0];
    assert_eq!(
        (report.partitions, report.batch_size, report.queue_capacity),
        (1, 4, 64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_is_unavailable_at_once_not_a_timeout() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // A silence limit far past the test's bound: only NATS's no-responders
    // status can end these calls in time.
    let remote = RemoteServing::<u32, u32>::builder(connect(&server).await, "nobody")
        .silence_limit(Duration::from_secs(120))
        .connect()
        .await
        .unwrap();
    for _ in 0..3 {
        let error = bounded("call to nobody", remote.dispatch(1))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            Error::Unavailable {
                name: "nobody".into()
            }
        );
        assert!(error.never_ran());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_answers_overloaded_and_calls_spill_to_another() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let full = gated(1, 1, false);
    let free = gated(8, 64, true);
    let _full_node = Node::builder(connect(&server).await, "sq", full.serving.clone())
        .start()
        .await
        .unwrap();
    // Fill the full node before the other node exists: one call runs
    // (held at the gate), the next takes the one place in the queue.
    let direct = remote(&server).await;
    let mut blockers = Vec::new();
    for (i, held) in [(1000, 1), (1001, 2)] {
        let direct = direct.clone();
        blockers.push(tokio::spawn(async move { direct.dispatch(i).await }));
        eventually("the call is taken", || {
            full.ran.lock().unwrap().len() + full.serving.queued() == held
        })
        .await;
    }
    assert_eq!(full.serving.queued(), 1);
    // Alone and full: the call is refused at once as overloaded.
    let error = bounded("overloaded", direct.dispatch(1)).await.unwrap_err();
    assert!(matches!(error, Error::Overloaded { .. }), "{error:?}");
    assert!(error.never_ran());

    let _free_node = Node::builder(connect(&server).await, "sq", free.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = remote(&server).await;
    // Through the shared subject (no load known yet) and then by routing,
    // every call lands on the free node, straight away or after a refusal.
    for i in 0..40u32 {
        assert_eq!(bounded("spill", caller.dispatch(i)).await.unwrap(), i * i);
    }
    assert_eq!(free.ran.lock().unwrap().len(), 40);
    assert_eq!(
        full.ran.lock().unwrap().len(),
        1,
        "the full node ran nothing else"
    );
    full.gate.send(true).unwrap();
    for blocker in blockers {
        assert!(bounded("blocker", blocker).await.unwrap().unwrap() >= 1_000_000);
    }
    assert_eq!(full.ran.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_mid_call_is_lost_and_the_call_never_runs_twice() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let doomed = gated(1, 8, false);
    let doomed_client = connect(&server).await;
    let _doomed_node = Node::builder(doomed_client.clone(), "sq", doomed.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = remote(&server).await;
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(5).await }
    });
    eventually("the call runs", || !doomed.ran.lock().unwrap().is_empty()).await;
    past_a_heartbeat().await;
    // A second node appears, then the first is cut off mid-call: its
    // heartbeats stop.
    let spare = gated(1, 8, true);
    let _spare_node = Node::builder(connect(&server).await, "sq", spare.serving.clone())
        .start()
        .await
        .unwrap();
    doomed_client.drain().await.unwrap();
    let error = bounded("lost call", call).await.unwrap().unwrap_err();
    assert!(matches!(error, Error::NodeLost { .. }), "{error:?}");
    assert!(!error.never_ran());
    assert!(
        spare.ran.lock().unwrap().is_empty(),
        "a non-idempotent call must not run again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_call_whose_node_is_lost_runs_on_another() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let doomed = gated(1, 8, false);
    let doomed_client = connect(&server).await;
    let _doomed_node = Node::builder(doomed_client.clone(), "sq", doomed.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .silence_limit(Duration::from_millis(800))
        .idempotent(true)
        .connect()
        .await
        .unwrap();
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(6).await }
    });
    eventually("the call runs", || !doomed.ran.lock().unwrap().is_empty()).await;
    past_a_heartbeat().await;
    let spare = gated(1, 8, true);
    let _spare_node = Node::builder(connect(&server).await, "sq", spare.serving.clone())
        .start()
        .await
        .unwrap();
    doomed_client.drain().await.unwrap();
    assert_eq!(bounded("retried call", call).await.unwrap().unwrap(), 36);
    assert_eq!(*spare.ran.lock().unwrap(), [6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_is_kept_on_the_node_and_a_dropped_call_is_cancelled_there() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let node_serving = gated(1, 8, false);
    let node = Node::builder(connect(&server).await, "sq", node_serving.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = remote(&server).await;
    // The first call holds the only partition; the next ones queue behind.
    let first = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(1).await }
    });
    eventually("the first call runs", || {
        !node_serving.ran.lock().unwrap().is_empty()
    })
    .await;
    let options = CallOptions::new().timeout(Duration::from_millis(300));
    let error = bounded("deadline", caller.dispatch_with(2, options))
        .await
        .unwrap_err();
    assert_eq!(error, Error::DeadlineExceeded);
    // A call dropped by its caller (no deadline the node knows of).
    let dropped = caller.dispatch(3);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), dropped)
            .await
            .is_err()
    );
    // The node answered the one and dropped the other: only the first
    // call is still running there.
    eventually("the node lets both go", || node.running() == 1).await;
    node_serving.gate.send(true).unwrap();
    assert_eq!(bounded("first", first).await.unwrap().unwrap(), 1);
    assert_eq!(bounded("after", caller.dispatch(4)).await.unwrap(), 16);
    assert_eq!(
        *node_serving.ran.lock().unwrap(),
        [1, 4],
        "the expired and the cancelled item never ran"
    );
    eventually("both are counted", || {
        let stats = node_serving.serving.stats();
        stats.expired + stats.cancelled == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_cleanly_while_nats_restarts_and_work_after() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let node_serving = gated(4, 64, true);
    let _node = Node::builder(connect(&server).await, "sq", node_serving.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = remote(&server).await;
    assert_eq!(bounded("before", caller.dispatch(2)).await.unwrap(), 4);
    server.kill();
    // In the gap a call ends with an error (never a hang), whichever one
    // the client's state makes it.
    let gap = bounded("gap call", caller.dispatch(3)).await;
    assert!(gap.is_err(), "{gap:?}");
    server.restart();
    // Both clients reconnect and resubscribe by themselves.
    let mut after = Err(Error::NoAnswer);
    for _ in 0..100 {
        after = bounded("after", caller.dispatch(5)).await;
        if after.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after.unwrap(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_max_payload_fails_before_it_is_sent() {
    let Some(server) = NatsServer::start_with(&[], Some("max_payload: 4096\n")) else {
        return;
    };
    let serving = Serving::new(|b: Batch<Vec<u8>>| {
        Ok::<_, String>(b.iter().map(Vec::len).collect::<Vec<usize>>())
    })
    .start()
    .unwrap()
    .map_results(|n: usize| Ok(n.to_be_bytes().to_vec()));
    let _node = Node::builder_with_codecs(
        connect(&server).await,
        "len",
        serving.clone(),
        RawBytes,
        RawBytes,
    )
    .start()
    .await
    .unwrap();
    let caller = RemoteServing::<Vec<u8>, Vec<u8>>::builder_with_codecs(
        connect(&server).await,
        "len",
        RawBytes,
        RawBytes,
    )
    .connect()
    .await
    .unwrap();
    let error = bounded("big", caller.dispatch(vec![0u8; 5000]))
        .await
        .unwrap_err();
    // The size is the message the call would have made: its payload and,
    // when coalesced, the envelope around it.
    assert!(
        matches!(error, Error::PayloadTooLarge { size, max: 4096 } if size >= 5000),
        "{error:?}"
    );
    let reply = bounded("small", caller.dispatch(vec![0u8; 3000]))
        .await
        .unwrap();
    assert_eq!(reply, 3000usize.to_be_bytes());
    assert_eq!(
        serving.serving().stats().items,
        1,
        "the big one never reached the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_subjects_gets_error_replies_and_the_node_keeps_serving() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let node_serving = gated(4, 64, true);
    let _node = Node::builder(connect(&server).await, "sq", node_serving.serving.clone())
        .start()
        .await
        .unwrap();
    let foreign = connect(&server).await;
    let subject = protocol::shared_subject("sq");
    let call = |line: &str| {
        let mut map = async_nats::HeaderMap::new();
        map.insert(protocol::CALL, line);
        map
    };
    let cases: Vec<(&str, async_nats::HeaderMap, Vec<u8>)> = vec![
        (
            "no headers at all",
            async_nats::HeaderMap::new(),
            b"hello".to_vec(),
        ),
        ("an old protocol", call("0 one msgpack normal"), vec![7]),
        ("a newer protocol", call("2 one msgpack normal"), vec![7]),
        ("the wrong codec", call("1 one json normal"), b"7".to_vec()),
        (
            "a payload that is not msgpack",
            call("1 one msgpack normal"),
            vec![0xc1, 0xff, 0x00],
        ),
        (
            "a many call that is not a list",
            call("1 many msgpack normal"),
            vec![7],
        ),
        ("an unknown mode", call("1 all msgpack normal"), vec![7]),
        ("a bad timeout", call("1 one msgpack normal soon"), vec![7]),
    ];
    for (what, headers, payload) in cases {
        let reply = bounded(
            what,
            foreign.request_with_headers(subject.clone(), headers, payload.into()),
        )
        .await
        .unwrap();
        let reply_headers = reply.headers.as_ref().unwrap();
        let line = reply_headers.get(protocol::REPLY).unwrap().as_str();
        assert!(
            matches!(
                protocol::ReplyHeader::parse(line),
                Some((
                    protocol::ReplyHeader::Error(protocol::ErrorKind::BadRequest),
                    _
                ))
            ),
            "{what}: {line}"
        );
        assert_eq!(
            reply_headers
                .get("Nats-Service-Error-Code")
                .unwrap()
                .as_str(),
            "400",
            "{what}"
        );
    }
    // A plain publish with no reply subject is ignored; the node serves on.
    foreign
        .publish(subject.clone(), "noise".into())
        .await
        .unwrap();
    foreign
        .publish(protocol::cancel_subject("sq"), "noise".into())
        .await
        .unwrap();
    assert_eq!(
        bounded("real call", remote(&server).await.dispatch(9))
            .await
            .unwrap(),
        81
    );
    assert_eq!(*node_serving.ran.lock().unwrap(), [9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_on_only_clients_with_credentials_get_in() {
    let Some(server) = NatsServer::start_with(&["--user", "batcher", "--pass", "s3cret"], None)
    else {
        return;
    };
    let refused = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(server.url())
        .await;
    assert!(
        refused.is_err(),
        "an unauthenticated client must be refused"
    );
    let wrong =
        async_nats::ConnectOptions::with_user_and_password("batcher".into(), "guess".into())
            .connect(server.url())
            .await;
    assert!(wrong.is_err(), "a wrong password must be refused");
    let login =
        || async_nats::ConnectOptions::with_user_and_password("batcher".into(), "s3cret".into());
    let node_serving = gated(4, 64, true);
    let _node = Node::builder(
        login().connect(server.url()).await.unwrap(),
        "sq",
        node_serving.serving.clone(),
    )
    .start()
    .await
    .unwrap();
    let caller =
        RemoteServing::<u32, u32>::builder(login().connect(server.url()).await.unwrap(), "sq")
            .connect()
            .await
            .unwrap();
    assert_eq!(
        bounded("authenticated call", caller.dispatch(12))
            .await
            .unwrap(),
        144
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_prefers_a_local_serving_with_room() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let here = gated(8, 16, true);
    let there = gated(8, 64, true);
    let _node = Node::builder(connect(&server).await, "sq", there.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::builder(connect(&server).await, "sq")
        .prefer_local(here.serving.clone())
        .connect()
        .await
        .unwrap();
    for i in 0..10u32 {
        assert_eq!(bounded("local", caller.dispatch(i)).await.unwrap(), i * i);
    }
    assert_eq!(here.ran.lock().unwrap().len(), 10);
    assert!(there.ran.lock().unwrap().is_empty());
    // With the local queue full, calls go to the node instead.
    here.gate.send(false).unwrap();
    // Eight run (held at the gate) and sixteen fill the queue.
    let held: Vec<_> = (0..24u32)
        .map(|i| {
            let local = here.serving.clone();
            tokio::spawn(async move { local.dispatch(100 + i).await })
        })
        .collect();
    eventually("the local queue is full", || here.serving.queued() == 16).await;
    assert_eq!(bounded("remote", caller.dispatch(3)).await.unwrap(), 9);
    assert_eq!(*there.ran.lock().unwrap(), [3]);
    here.gate.send(true).unwrap();
    for call in held {
        bounded("held", call).await.unwrap().unwrap();
    }
}
