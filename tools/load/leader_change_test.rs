//! A producer across a leader change, against two fake brokers in this
//! process: broker 1 leads partition 0 until it "dies" (closes every
//! connection, as a SIGKILLed process does) after a number of Produce
//! requests; for a while Metadata still names it (as Kafka does until the
//! dead broker's session expires), then broker 2. The producer must carry on
//! with broker 2 and its timeline must show the gap.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};

use crate::batch::Shape;
use crate::produce::{self, StartGate, Times};
use crate::route::{EventKind, Route, Router};
use crate::stats::{Clock, Live};
use crate::versions::Versions;
use corelog::model::compression::Codec;

const TOPIC: &str = "moving";
/// Broker 1 closes everything after this many Produce requests.
const PRODUCES_BEFORE_DEATH: u32 = 20;
/// How long Metadata still names the dead broker as the leader.
const STALE_METADATA: Duration = Duration::from_millis(300);
const FRAME_BYTES_MAX: usize = 1 << 20;

struct Fake {
    ports: [u16; 2],
    produced: [AtomicU32; 2],
    dead: AtomicBool,
    died_at: Mutex<Option<Instant>>,
}

impl Fake {
    fn leader(&self) -> i32 {
        match *self.died_at.lock().unwrap() {
            Some(at) if at.elapsed() >= STALE_METADATA => 2,
            _ => 1,
        }
    }
}

fn start() -> Arc<Fake> {
    let listeners = [TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("127.0.0.1:0").unwrap()];
    let ports = [listeners[0].local_addr().unwrap().port(), listeners[1].local_addr().unwrap().port()];
    let fake = Arc::new(Fake {
        ports,
        produced: [AtomicU32::new(0), AtomicU32::new(0)],
        dead: AtomicBool::new(false),
        died_at: Mutex::new(None),
    });
    for (i, listener) in listeners.into_iter().enumerate() {
        let fake = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let fake = fake.clone();
                std::thread::spawn(move || serve(stream.unwrap(), i as i32 + 1, &fake));
            }
        });
    }
    fake
}

fn serve(mut stream: TcpStream, node: i32, fake: &Fake) {
    while let Ok(frame) = corelog_client::frame::read_frame(&mut stream, FRAME_BYTES_MAX) {
        if node == 1 && fake.dead.load(Ordering::SeqCst) {
            return; // the dead broker's connections close
        }
        let Some(response) = answer(frame, node, fake) else { return };
        let mut out = (response.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&response);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn answer(mut frame: Bytes, node: i32, fake: &Fake) -> Option<BytesMut> {
    let header = decode_request_header_from_buffer(&mut frame).unwrap();
    let version = header.request_api_version;
    let key = ApiKey::try_from(header.request_api_key).unwrap();
    let mut out = BytesMut::new();
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    response_header.encode(&mut out, key.response_header_version(version)).unwrap();
    match key {
        ApiKey::ApiVersions => {
            let keys = [ApiKey::ApiVersions, ApiKey::Metadata, ApiKey::Produce];
            let api_keys = keys
                .iter()
                .map(|k| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(k.valid_versions().min)
                        .with_max_version(k.valid_versions().max)
                })
                .collect();
            ApiVersionsResponse::default().with_api_keys(api_keys).encode(&mut out, version).unwrap();
        }
        ApiKey::Metadata => {
            let brokers = (1..=2)
                .filter(|id| *id == 2 || !fake.dead.load(Ordering::SeqCst) || fake.leader() == 1)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(fake.ports[id as usize - 1]))
                })
                .collect();
            let partition = MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(fake.leader()))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1), BrokerId(2)]);
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
                .with_partitions(vec![partition]);
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_topics(vec![topic])
                .encode(&mut out, version)
                .unwrap();
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut frame, version).unwrap();
            let n = fake.produced[node as usize - 1].fetch_add(1, Ordering::SeqCst) + 1;
            if node == 1 && n >= PRODUCES_BEFORE_DEATH {
                fake.dead.store(true, Ordering::SeqCst);
                *fake.died_at.lock().unwrap() = Some(Instant::now());
                return None;
            }
            // The old leader, once it is no longer named, would say so; the new one acknowledges.
            let code = if fake.leader() == node { 0 } else { 6 };
            let responses = request
                .topic_data
                .iter()
                .map(|t| {
                    TopicProduceResponse::default().with_name(t.name.clone()).with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| PartitionProduceResponse::default().with_index(p.index).with_error_code(code))
                            .collect(),
                    )
                })
                .collect();
            ProduceResponse::default().with_responses(responses).encode(&mut out, version).unwrap();
        }
        other => panic!("the fake broker does not serve {other:?}"),
    }
    Some(out)
}

#[test]
fn a_producer_follows_the_leader_to_another_broker_and_its_timeline_shows_the_gap() {
    let fake = start();
    let [port1, port2] = fake.ports;
    let versions = Versions { produce: 9, fetch: 12, list_offsets: 7, metadata: 12, create_topics: 7 };
    let router = Router {
        bootstrap: format!("127.0.0.1:{port1},127.0.0.1:{port2}"),
        client_id: "test".into(),
        topic: TOPIC.into(),
        versions,
        known: Default::default(),
    };
    let plan = produce::Plan {
        id: 0,
        topic: TOPIC.into(),
        routes: vec![Route { broker_id: 1, addr: format!("127.0.0.1:{port1}"), partitions: vec![0] }],
        router: Some(router),
        timeline: true,
        version: versions.produce,
        acks: -1,
        shape: Shape { record_bytes: 100, key_bytes: 0, codec: Codec::None },
        records_per_batch: 10,
        partitions_per_request: 1,
        max_in_flight: 1,
        quota: None,
        rate: Some(2_000.0),
        client_id: "test".into(),
        sink: false,
    };
    let gate = StartGate::new(1);
    let worker = {
        let gate = gate.clone();
        std::thread::spawn(move || produce::run(plan, gate, Arc::new(Live::default())))
    };
    let stop = Arc::new(AtomicBool::new(false));
    gate.open(|| {
        let start = Instant::now();
        Times {
            clock: Clock::new(),
            start,
            warmup_end: start,
            end: Some(start + Duration::from_millis(1_500)),
            stop: stop.clone(),
        }
    });
    let tally = worker.join().unwrap();

    assert_eq!(tally.failure, None, "the producer gave up; errors {:?}", tally.errors);
    let acks_from = |b: i32| tally.timeline.iter().filter(|e| e.broker_id == b && e.kind == EventKind::Ack).count();
    assert_eq!(acks_from(1), PRODUCES_BEFORE_DEATH as usize - 1, "broker 1 acked until it died");
    assert!(acks_from(2) > 10, "broker 2 took over: {} acks", acks_from(2));
    let last_old = tally.timeline.iter().rfind(|e| e.broker_id == 1 && e.kind == EventKind::Ack).unwrap();
    let first_new = tally.timeline.iter().find(|e| e.broker_id == 2 && e.kind == EventKind::Ack).unwrap();
    let gap_ms = (first_new.unix_us - last_old.unix_us) / 1000;
    assert!(gap_ms >= STALE_METADATA.as_millis() as u64, "the gap spans the stale metadata: {gap_ms} ms");
    assert!(gap_ms < 1_000, "retries every 100 ms find the new leader soon: {gap_ms} ms");
    assert!(
        tally.timeline.iter().any(|e| e.broker_id == 1 && e.kind == EventKind::Disconnected),
        "the lost connection is on the timeline"
    );
    assert!(tally.errors.keys().any(|k| k.contains("connection lost")), "{:?}", tally.errors);
    assert!(tally.messages_total > 0);
}
