//! A real controller quorum (two of three voters, on 127.0.0.1 and
//! 127.0.0.2, with their transport, thread and storage) under attack from
//! this test: a stranger's connection from 127.0.0.4, then malformed frames
//! and crafted raft messages from the third voter's own address, some of
//! which trip raft-rs's assertions. The quorum must still commit after.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use raft::prelude::{Entry, Message, MessageType};

use super::*;
use crate::cluster::{NodeRegistration, Voter};

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

fn start_node(me: u32, voters: &[Voter], dir: &std::path::Path) -> (ControllerHandle, std::thread::JoinHandle<()>) {
    let registration = NodeRegistration {
        id: NodeId(me),
        incarnation: uuid::Uuid::new_v4(),
        epoch: 0,
        host: format!("127.0.0.{me}"),
        port: 9092,
        shards: 1,
        fenced: true,
        skipped_port: None,
    };
    start(ControllerConfig {
        dir: dir.to_path_buf(),
        me: NodeId(me),
        voters: voters.to_vec(),
        registration,
        duties: DutySettings {
            session_timeout_ms: 60_000,
            auto_leader_rebalance: false,
            imbalance_check_interval_ms: 300_000,
            imbalance_percentage_max: 10,
        },
        heartbeat_interval_ms: 500,
        internal_topic: None,
    })
    .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(handle: &ControllerHandle, name: &str) -> Result<Arc<Snapshot>, ControllerError> {
    let partitions =
        vec![crate::cluster::PartitionAssignment::led_by_first(vec![crate::cluster::ReplicaPlacement::new(
            NodeId(1),
            crate::cluster::ShardId(0),
        )])];
    let record = MetadataRecord::CreateTopic {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions,
        configs: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(handle.propose(vec![record]))
}

/// Proposals through either node commit (a few tries: an election may be going on).
fn commits(handles: &[&ControllerHandle], name: &str) -> bool {
    handles.iter().enumerate().all(|(i, h)| {
        (0..40).any(|_| {
            let ok = create(h, &format!("{name}-{i}")).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(250));
            }
            ok
        })
    })
}

/// Sends `bytes` from `from` to `to` on a connection of its own, and waits
/// until the controller has read them (it closes a connection that sent a
/// bad frame; a good one stays open until this side closes it).
fn send_from(from: &str, to: SocketAddr, bytes: &[u8]) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0).into()).unwrap();
    socket.connect_timeout(&to.into(), Duration::from_secs(2)).unwrap();
    let mut stream: TcpStream = socket.into();
    // A write may fail once the controller has closed the connection: that is its answer.
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
    std::thread::sleep(Duration::from_millis(100));
}

fn raft(message: &Message) -> Vec<u8> {
    transport::raft_frame(message)
}

fn message(kind: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(kind);
    (m.from, m.to, m.term) = (from, to, term);
    m
}

#[test]
fn the_controller_commits_after_hostile_frames_and_raft_messages_that_trip_raft_rs() {
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let voters: Vec<Voter> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Voter { id: NodeId(i as u32 + 1), host: h.to_string(), port: free_port(h) })
        .collect();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (one, one_thread) = start_node(1, &voters, dirs[0].path());
    let (two, two_thread) = start_node(2, &voters, dirs[1].path());
    wait_for("both nodes registered and unfenced", || {
        let s = one.snapshots().borrow().clone();
        s.nodes.len() == 2 && s.unfenced_nodes().count() == 2
    });
    assert!(commits(&[&one, &two], "before"));

    let (me3, raft3) = ("127.0.0.3", node::raft_id(NodeId(3)));
    for (n, voter) in voters[..2].iter().enumerate() {
        let to = SocketAddr::new(voter.host.parse().unwrap(), voter.port);
        let target = node::raft_id(voter.id);
        let other = node::raft_id(voters[1 - n].id);
        // A stranger's address: refused, whatever it sends (a heartbeat asking to fence node 1).
        let fence = Heartbeat { node: NodeId(1), epoch: 1, applied: 1_000, want_shutdown: true };
        send_from("127.0.0.4", to, &transport::heartbeat_frame(&fence));
        // From the third voter's address: malformed frames.
        send_from(me3, to, &[0xff, 0xff, 0xff, 0xff, 0]);
        send_from(me3, to, &[0, 0, 0, 3, 9, 1, 2]);
        send_from(me3, to, &[0, 0, 0, 5, 0, 0xff, 0xff, 0xff, 0xff]);
        send_from(me3, to, &[0, 0, 0, 10]);
        // Speaking for another voter, or for a node that is no voter.
        send_from(me3, to, &raft(&message(MessageType::MsgHeartbeat, other, target, 1_000)));
        send_from(me3, to, &transport::heartbeat_frame(&fence));
        send_from(me3, to, &raft(&message(MessageType::MsgHeartbeat, 99, target, 1_000)));
        // Not addressed to this node; a local message kind.
        send_from(me3, to, &raft(&message(MessageType::MsgHeartbeat, raft3, other, 1_000)));
        send_from(me3, to, &raft(&message(MessageType::MsgHup, raft3, target, 0)));
        // A term near overflow.
        send_from(me3, to, &raft(&message(MessageType::MsgAppend, raft3, target, u64::MAX - 1)));
        // A commit index far past the log, at a term ahead and at "no term":
        // raft-rs panics ("to_commit is out of range").
        for term in [1_000, 0] {
            let mut far = message(MessageType::MsgHeartbeat, raft3, target, term);
            far.commit = 1 << 40;
            send_from(me3, to, &raft(&far));
        }
        // Entries that skip indexes, and an entry far too large.
        let mut gap = message(MessageType::MsgAppend, raft3, target, 2_000);
        (gap.index, gap.log_term) = (0, 0);
        gap.entries = [1u64, 5].map(|index| Entry { index, term: 2_000, ..Default::default() }).to_vec().into();
        send_from(me3, to, &raft(&gap));
        let mut huge = message(MessageType::MsgAppend, raft3, target, 3_000);
        huge.entries =
            vec![Entry { index: 1, term: 3_000, data: vec![7u8; 20 << 20].into(), ..Default::default() }].into();
        send_from(me3, to, &raft(&huge));
        // A snapshot far ahead whose image is not one.
        let mut snapshot = message(MessageType::MsgSnapshot, raft3, target, 4_000);
        let snap = snapshot.mut_snapshot();
        snap.data = b"not an image".to_vec().into();
        let meta = snap.mut_metadata();
        (meta.index, meta.term) = (1 << 30, 4_000);
        meta.mut_conf_state().voters = vec![1, 2, 3].into_iter().map(|n| node::raft_id(NodeId(n))).collect();
        send_from(me3, to, &raft(&snapshot));
    }

    wait_for("the quorum commits again", || commits(&[&one, &two], "after"));
    let state = one.snapshots().borrow().clone();
    assert!(state.nodes.values().all(|n| !n.fenced), "nobody fenced by a forged heartbeat: {:?}", state.nodes);
    for (handle, thread) in [(one, one_thread), (two, two_thread)] {
        assert!(!thread.is_finished(), "a controller thread stopped");
        handle.stop();
        thread.join().unwrap();
    }
}
