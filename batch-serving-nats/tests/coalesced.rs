//! Coalesced remote calls on a real nats-server: many callers' calls to one
//! node travel as one message, and every promise of a lone call still
//! holds per call (its own answer, its own deadline, its own cancel, no
//! second run, one bad item failing alone, no message past `max_payload`).
//!
//! A "plug" holds a message in flight where a test needs calls to gather:
//! on a handle with one message in flight at a time and a long linger, a
//! first call goes alone (nothing else is out), a second goes in a message
//! of its own, and its node holds both; calls made meanwhile wait here and
//! leave together when the linger ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Priority, Serving};
use batch_serving_nats::protocol::{self, coalesced};
use batch_serving_nats::{Error, Node, RawBytes, RemoteServing};
use common::{NatsServer, bounded, connect, eventually, gated, past_a_heartbeat};
use futures::StreamExt;
use tokio::sync::watch;

/// Every coalesced message any node of `sq` receives: its entries and its
/// payload size, seen by a plain subscriber beside the nodes.
#[derive(Clone, Default)]
struct Spy(Arc<Mutex<Vec<(usize, usize)>>>, Arc<Mutex<usize>>);

impl Spy {
    async fn on(server: &NatsServer, name: &str) -> Spy {
        let spy = Spy::default();
        let client = connect(server).await;
        let mut messages = client.subscribe(format!("bsv1.{name}.>")).await.unwrap();
        client.flush().await.unwrap();
        let seen = Arc::clone(&spy.0);
        let plain = Arc::clone(&spy.1);
        tokio::spawn(async move {
            let _client = client;
            while let Some(message) = messages.next().await {
                let line = protocol::header(message.headers.as_ref(), protocol::CALL);
                if line.is_some_and(|line| line.contains(" coalesced ")) {
                    let entries = coalesced::read_request(&message.payload)
                        .map(|entries| entries.len())
                        .unwrap_or(0);
                    seen.lock().unwrap().push((entries, message.payload.len()));
                } else if line.is_some() {
                    *plain.lock().unwrap() += 1;
                }
            }
        });
        spy
    }

    fn messages(&self) -> Vec<(usize, usize)> {
        self.0.lock().unwrap().clone()
    }

    /// Calls sent alone, as plain requests.
    fn plain(&self) -> usize {
        *self.1.lock().unwrap()
    }
}

/// One call on its own task, as a caller elsewhere would make it.
fn spawn_dispatch(
    caller: &RemoteServing<u32, u32>,
    item: u32,
) -> tokio::task::JoinHandle<Result<u32, Error>> {
    let caller = caller.clone();
    tokio::spawn(async move { caller.dispatch(item).await })
}

/// A handle whose calls gather behind one message in flight for up to
/// `linger`.
async fn plugged(server: &NatsServer, linger: Duration) -> RemoteServing<u32, u32> {
    RemoteServing::builder(connect(server).await, "sq")
        .silence_limit(Duration::from_millis(800))
        .coalesce_in_flight(1)
        .coalesce_linger(linger)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_one_node_travel_together_and_each_gets_its_own_answer() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let spy = Spy::on(&server, "sq").await;
    let held = gated(64, 256, false);
    let node = Node::builder(connect(&server).await, "sq", held.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .connect()
        .await
        .unwrap();
    assert_eq!(caller.wait_for_nodes(1, Duration::from_secs(5)).await, 1);
    let calls: Vec<_> = (0..60u32)
        .map(|i| {
            let caller = caller.clone();
            let priority = [Priority::Low, Priority::Normal, Priority::High][i as usize % 3];
            tokio::spawn(async move {
                caller
                    .dispatch_with(i, CallOptions::new().priority(priority))
                    .await
            })
        })
        .collect();
    eventually("every call reaches the node", || node.running() == 60).await;
    held.gate.send(true).unwrap();
    for (i, call) in calls.into_iter().enumerate() {
        let i = i as u32;
        assert_eq!(bounded("call", call).await.unwrap().unwrap(), i * i);
    }
    let messages = spy.messages();
    let entries: usize = messages.iter().map(|(entries, _)| entries).sum();
    assert_eq!(
        (spy.plain(), entries),
        (1, 59),
        "the first call went alone (nothing else was out), the rest coalesced: {messages:?}"
    );
    assert!(
        messages.len() < 60 / 2,
        "60 calls held at the node went in {} messages",
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entry_keeps_its_own_deadline_and_a_dropped_caller_drops_only_its_entry() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let spy = Spy::on(&server, "sq").await;
    let held = gated(1, 16, false);
    let node = Node::builder(connect(&server).await, "sq", held.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = plugged(&server, Duration::from_secs(2)).await;
    assert_eq!(caller.wait_for_nodes(1, Duration::from_secs(5)).await, 1);
    // The plug: one call runs on the node's only partition and holds it;
    // the second waits there, and its message holds the handle's place.
    let plug = spawn_dispatch(&caller, 1);
    eventually("the plug runs", || !held.ran.lock().unwrap().is_empty()).await;
    let holder = spawn_dispatch(&caller, 6);
    eventually("the holder is on the node", || node.running() == 2).await;
    // These gather behind the plug's message and leave together when its
    // linger ends: one with a deadline that passes while it is on the
    // node, one whose caller leaves while it is there, two that wait.
    let spawn = |item: u32, options: CallOptions| {
        let caller = caller.clone();
        tokio::spawn(async move { caller.dispatch_with(item, options).await })
    };
    let late = spawn(2, CallOptions::new().timeout(Duration::from_millis(2600)));
    let patient = spawn(3, CallOptions::new());
    let leaving = spawn(4, CallOptions::new());
    let waiting = spawn(5, CallOptions::new().priority(Priority::High));
    eventually("the four reach the node together", || node.running() == 6).await;
    // The spy hears the message beside the node, maybe a moment later.
    eventually("the spy sees the four in one message", || {
        spy.messages().last().map(|(entries, _)| *entries) == Some(4)
    })
    .await;
    leaving.abort();
    eventually("the node drops the left caller's entry", || {
        node.running() == 5
    })
    .await;
    let error = bounded("late", late).await.unwrap().unwrap_err();
    assert_eq!(error, Error::DeadlineExceeded);
    eventually("the node expires the late entry", || node.running() == 4).await;
    held.gate.send(true).unwrap();
    assert_eq!(bounded("plug", plug).await.unwrap().unwrap(), 1);
    assert_eq!(bounded("holder", holder).await.unwrap().unwrap(), 36);
    assert_eq!(bounded("patient", patient).await.unwrap().unwrap(), 9);
    assert_eq!(bounded("waiting", waiting).await.unwrap().unwrap(), 25);
    let mut ran = held.ran.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(
        ran,
        [1, 3, 5, 6],
        "the expired and the dropped entries never ran"
    );
    let stats = held.serving.stats();
    assert_eq!((stats.expired, stats.cancelled), (1, 1), "{stats:?}");
}

/// A node lost with a coalesced message in flight: without idempotence,
/// every entry fails as possibly run and none runs again; with it, each
/// runs once on another node.
async fn node_lost_mid_message(idempotent: bool) {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let spy = Spy::on(&server, "sq").await;
    let doomed = gated(1, 16, false);
    let doomed_client = connect(&server).await;
    let doomed_node = Node::builder(doomed_client.clone(), "sq", doomed.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .silence_limit(Duration::from_millis(800))
        .coalesce_in_flight(1)
        .coalesce_linger(Duration::from_secs(2))
        .idempotent(idempotent)
        .connect()
        .await
        .unwrap();
    assert_eq!(caller.wait_for_nodes(1, Duration::from_secs(5)).await, 1);
    let plug = spawn_dispatch(&caller, 10);
    eventually("the plug runs", || !doomed.ran.lock().unwrap().is_empty()).await;
    let holder = spawn_dispatch(&caller, 15);
    eventually("the holder is on the node", || doomed_node.running() == 2).await;
    let calls: Vec<_> = (11..15u32)
        .map(|i| {
            let caller = caller.clone();
            tokio::spawn(async move { caller.dispatch(i).await })
        })
        .collect();
    eventually("the message is on the node", || doomed_node.running() == 6).await;
    // The spy hears the message beside the node, maybe a moment later.
    eventually("the spy sees the four in one message", || {
        spy.messages().last().map(|(entries, _)| *entries) == Some(4)
    })
    .await;
    past_a_heartbeat().await;
    let spare = gated(8, 16, true);
    let _spare_node = Node::builder(connect(&server).await, "sq", spare.serving.clone())
        .start()
        .await
        .unwrap();
    doomed_client.drain().await.unwrap();
    let mut results = vec![bounded("plug", plug).await.unwrap()];
    for call in calls.into_iter().chain([holder]) {
        results.push(bounded("call", call).await.unwrap());
    }
    let mut spare_ran = spare.ran.lock().unwrap().clone();
    spare_ran.sort_unstable();
    if idempotent {
        let answers: Vec<u32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, [100, 121, 144, 169, 196, 225]);
        assert_eq!(
            spare_ran,
            [10, 11, 12, 13, 14, 15],
            "each ran once more, once"
        );
    } else {
        for result in results {
            let error = result.unwrap_err();
            assert!(
                matches!(error, Error::NodeLost { .. } | Error::NoAnswer),
                "{error:?}"
            );
            assert!(!error.never_ran());
        }
        assert!(
            spare_ran.is_empty(),
            "a non-idempotent call must not run again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_mid_message_fails_each_call_that_may_have_run() {
    node_lost_mid_message(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_mid_message_reruns_each_idempotent_call_once_elsewhere() {
    node_lost_mid_message(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_together_pass_max_payload_are_split_and_all_answered() {
    let Some(server) = NatsServer::start_with(&[], Some("max_payload: 4096\n")) else {
        return;
    };
    let spy = Spy::on(&server, "len").await;
    let (gate, watcher) = watch::channel(false);
    let serving = Serving::new_async(move |batch: Batch<Vec<u8>>| {
        let mut watcher = watcher.clone();
        async move {
            let _ = watcher.wait_for(|open| *open).await;
            Ok::<_, String>(
                batch
                    .iter()
                    .map(|b| b.len().to_be_bytes().to_vec())
                    .collect(),
            )
        }
    })
    .batch_size(1)
    .start()
    .unwrap();
    let node = Node::builder_with_codecs(
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
    .coalesce_in_flight(1)
    .coalesce_linger(Duration::from_secs(1))
    .connect()
    .await
    .unwrap();
    assert_eq!(caller.wait_for_nodes(1, Duration::from_secs(5)).await, 1);
    let plug = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(vec![1]).await }
    });
    eventually("the plug is on the node", || node.running() == 1).await;
    let holder = tokio::spawn({
        let caller = caller.clone();
        async move { caller.dispatch(vec![2, 2]).await }
    });
    eventually("the holder is on the node", || node.running() == 2).await;
    // Twelve calls of 1000 bytes: one message would be 12 kB.
    let calls: Vec<_> = (0..12usize)
        .map(|i| {
            let caller = caller.clone();
            tokio::spawn(async move { caller.dispatch(vec![0u8; 1000 + i]).await })
        })
        .collect();
    eventually("all calls are on the node", || node.running() == 14).await;
    gate.send(true).unwrap();
    assert_eq!(
        bounded("plug", plug).await.unwrap().unwrap(),
        1usize.to_be_bytes()
    );
    assert_eq!(
        bounded("holder", holder).await.unwrap().unwrap(),
        2usize.to_be_bytes()
    );
    for (i, call) in calls.into_iter().enumerate() {
        let reply = bounded("call", call).await.unwrap().unwrap();
        assert_eq!(reply, (1000 + i).to_be_bytes());
    }
    let messages = spy.messages();
    let split: Vec<_> = messages.iter().skip(1).collect();
    assert!(split.len() >= 4, "12 kB must be split: {messages:?}");
    assert!(split.iter().all(|(entries, _)| *entries >= 1));
    assert!(
        messages.iter().all(|(_, size)| *size <= 4096),
        "no message past max_payload: {messages:?}"
    );
    assert_eq!(
        messages.iter().map(|(entries, _)| entries).sum::<usize>(),
        13
    );
    assert_eq!(spy.plain(), 1, "the plug went alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_a_coalesced_message_fails_only_itself_and_the_node_serves_on() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let node_serving = gated(8, 64, true);
    let _node = Node::builder(connect(&server).await, "sq", node_serving.serving.clone())
        .start()
        .await
        .unwrap();
    let foreign = connect(&server).await;
    let request = |payload: Vec<u8>| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(protocol::CALL, "1 coalesced msgpack normal");
        foreign.request_with_headers(protocol::shared_subject("sq"), headers, payload.into())
    };
    let reply_kind = |message: &async_nats::Message| {
        protocol::header(message.headers.as_ref(), protocol::REPLY)
            .and_then(protocol::ReplyHeader::parse)
            .map(|(kind, _)| format!("{kind:?}"))
            .unwrap_or_default()
    };

    // An envelope that cannot be read fails the whole message, with why.
    let mut newer = coalesced::RequestWriter::default();
    newer.push(&coalesced::Entry {
        id: 0,
        mode: protocol::Mode::One,
        priority: Priority::Normal,
        timeout: None,
        items: &[7],
    });
    let mut newer = newer.finish();
    newer[0] = 2;
    for (what, payload, why) in [
        ("noise", b"hello".to_vec(), "format 104"),
        (
            "a count past the bytes",
            vec![1, 0xff, 0xff, 0xff, 0xff, 0],
            "entries announced",
        ),
        ("a newer envelope", newer, "format 2"),
        ("nothing", Vec::new(), "truncated"),
    ] {
        let reply = bounded(what, request(payload)).await.unwrap();
        assert!(reply_kind(&reply).contains("BadRequest"), "{what}");
        let status = protocol::header(reply.headers.as_ref(), "Nats-Service-Error").unwrap_or("");
        assert!(status.contains(why), "{what}: {status}");
    }

    // A good envelope with one unreadable item: that entry fails alone.
    let mut writer = coalesced::RequestWriter::default();
    for (id, items) in [(0, &[0xc1u8][..]), (1, &[7u8][..]), (2, &[0x92, 1, 2][..])] {
        writer.push(&coalesced::Entry {
            id,
            mode: if id == 2 {
                protocol::Mode::Many
            } else {
                protocol::Mode::One
            },
            priority: Priority::Normal,
            timeout: Some(Duration::from_secs(5)),
            items,
        });
    }
    let reply = bounded("mixed", request(writer.finish())).await.unwrap();
    assert!(reply_kind(&reply).contains("Done"));
    let mut answers = coalesced::read_reply(&reply.payload).unwrap();
    answers.sort_by_key(|answer| answer.id);
    assert!(matches!(
        answers[0].result,
        Err((protocol::ErrorKind::BadRequest, _))
    ));
    assert_eq!(answers[1].result, Ok(&[49u8][..]), "7 squared, as msgpack");
    assert_eq!(
        answers[2].result,
        Ok(&[0x92u8, 1, 4][..]),
        "[1, 4] as msgpack"
    );

    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .connect()
        .await
        .unwrap();
    assert_eq!(bounded("after", caller.dispatch(9)).await.unwrap(), 81);
    let mut ran = node_serving.ran.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, [1, 2, 7, 9], "only the readable items ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_that_does_not_coalesce_sends_each_call_alone() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let spy = Spy::on(&server, "sq").await;
    let held = gated(64, 256, true);
    let _node = Node::builder(connect(&server).await, "sq", held.serving.clone())
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .coalesce(false)
        .connect()
        .await
        .unwrap();
    let calls = (0..20u32).map(|i| caller.dispatch(i));
    let answers = bounded("calls", futures::future::join_all(calls)).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), (i * i) as u32);
    }
    eventually("the spy hears every call", || spy.plain() == 20).await;
    assert!(spy.messages().is_empty(), "{:?}", spy.messages());
    assert_eq!(held.ran.lock().unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalesced_error_keeps_its_kind_and_its_whole_text() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let spy = Spy::on(&server, "sq").await;
    let failing =
        Serving::new(|_: Batch<u32>| Err::<Vec<u32>, _>("thirteen\nis ünlucky".to_string()))
            .start()
            .unwrap();
    let _node = Node::builder(connect(&server).await, "sq", failing)
        .start()
        .await
        .unwrap();
    let caller = RemoteServing::<u32, u32>::builder(connect(&server).await, "sq")
        .connect()
        .await
        .unwrap();
    assert_eq!(caller.wait_for_nodes(1, Duration::from_secs(5)).await, 1);
    // Polled together: the first finds nothing out and goes alone, the
    // rest go coalesced.
    let errors = bounded(
        "failing calls",
        futures::future::join_all((0..20u32).map(|i| caller.dispatch(i))),
    )
    .await;
    let whole = "thirteen\nis ünlucky";
    let mut kept = 0;
    for error in errors {
        match error.unwrap_err() {
            Error::Batch(text) if text == whole => kept += 1,
            // A plain reply carries the text in a header: its first line,
            // in visible ASCII.
            Error::Batch(text) => assert_eq!(text, "thirteen"),
            other => panic!("the kind is lost: {other:?}"),
        }
    }
    // The spy hears the requests beside the node, maybe a moment later.
    eventually("the spy hears every call", || {
        let coalesced: usize = spy.messages().iter().map(|(entries, _)| entries).sum();
        (spy.plain(), coalesced) == (1, 19)
    })
    .await;
    assert_eq!(kept, 19, "every coalesced error keeps its whole text");
}
