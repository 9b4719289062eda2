//! Follower fetchers (Kafka's `ReplicaFetcherThread`, one per source
//! broker): each shard runs one task per leader shard it follows partitions
//! of, which long-polls that shard with Fetch (replica id = this shard's
//! broker id) over the shard's own io_uring TCP, and appends what comes back
//! with the leader's offsets and epochs. Before it fetches a partition whose
//! leader or leader epoch changed, it truncates it by OffsetsForLeaderEpoch
//! (KIP-101/279). A task ends once no local replica follows its leader; the
//! shard's fetcher supervisor starts one for every leader that appears.
//!
//! Bounded: one request in flight per task, at most
//! replica.fetch.response.max.bytes per answer and replica.fetch.max.bytes
//! per partition, held by the leader up to replica.fetch.wait.max.ms for
//! replica.fetch.min.bytes (Kafka's settings, `ReplicaFetch`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::link::LeaderLink;
use super::ReplicationError;
use crate::cluster::ReplicaPlacement;
use crate::config::BrokerConfig;
use crate::metadata::Snapshot;
use crate::model::batch::BatchHeader;
use crate::model::now_ms;
use crate::partition::leader_rules::{self, FollowerId, BROKER_EPOCH_UNKNOWN};
use crate::partition::Replica;
use crate::shard::Shard;
use crate::storage::AppendInfo;

/// What a response frame may hold beyond its records: headers of every
/// partition. Past it, the leader is out of step and the link is dropped.
const RESPONSE_FRAME_OVERHEAD_BYTES_MAX: usize = 4 << 20;
/// The pause after a failed fetch starts at replica.fetch.backoff.ms and
/// doubles while errors go on, up to this (or the setting, if larger): a
/// leader down for long is not called every second by every follower shard.
const REPLICA_FETCH_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often the supervisor looks for leaders to follow, besides role changes.
const SUPERVISOR_TICK: Duration = Duration::from_secs(1);
/// Fetch v15: topics by id (v13+), `last_fetched_epoch` (v12+, KIP-320)
/// and the replica's id with its node's broker epoch in `replica_state`
/// (KIP-903).
const FETCH_VERSION: i16 = 15;
const OFFSETS_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const KAFKA_NONE: i16 = 0;
const KAFKA_OFFSET_OUT_OF_RANGE: i16 = 1;

/// The follower fetch's settings (BrokerConfig's replica.fetch.*), in the
/// protocol's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplicaFetch {
    partition_bytes_max: i32,
    response_bytes_max: i32,
    wait_ms_max: i32,
    min_bytes: i32,
    backoff: Duration,
}

impl ReplicaFetch {
    fn of(config: &BrokerConfig) -> ReplicaFetch {
        // Validated at start-up: the byte counts are at most 1 GiB.
        let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        ReplicaFetch {
            partition_bytes_max: to_i32(config.replica_fetch_max_bytes),
            response_bytes_max: to_i32(config.replica_fetch_response_max_bytes),
            wait_ms_max: to_i32(config.replica_fetch_wait_max_ms),
            min_bytes: to_i32(config.replica_fetch_min_bytes),
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
        }
    }
}

/// The leaders a fetcher task runs for; a task takes its leader out when it ends.
type Running = Rc<RefCell<HashSet<ReplicaPlacement>>>;

struct Deregister(Running, ReplicaPlacement);

impl Drop for Deregister {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}

impl Shard {
    /// Starts a fetcher for every leader shard some local replica follows,
    /// whenever roles change; runs until shutdown.
    pub async fn run_replica_fetchers(self: Rc<Self>) {
        let running: Running = Rc::default();
        while !self.stopping.get() {
            for leader in self.followed_leaders() {
                if running.borrow_mut().insert(leader) {
                    let guard = Deregister(running.clone(), leader);
                    crate::runtime::spawn(self.clone().follow(leader, guard));
                }
            }
            tokio::select! {
                _ = self.partitions.roles_changed() => {}
                _ = tokio::time::sleep(SUPERVISOR_TICK) => {}
                _ = self.stop.notified() => return,
            }
        }
    }

    fn followed_leaders(&self) -> HashSet<ReplicaPlacement> {
        self.partitions.all().iter().filter_map(|r| r.followed_leader()).collect()
    }

    fn replicas_following(&self, leader: ReplicaPlacement) -> Vec<Rc<Replica>> {
        self.partitions.all().into_iter().filter(|r| r.followed_leader() == Some(leader)).collect()
    }

    /// Who this shard's fetches say they are: its replica, and its node's
    /// broker epoch as the snapshot registers it (the leader refuses an
    /// older one, KIP-903).
    fn follower_id(&self) -> FollowerId {
        let at = self.replica();
        let broker_epoch = self.snapshot().nodes.get(&at.node).map_or(BROKER_EPOCH_UNKNOWN, |n| n.epoch);
        FollowerId { at, broker_epoch }
    }

    /// Where the leader shard listens, from the snapshot's registrations.
    fn address_of(&self, leader: ReplicaPlacement) -> Result<SocketAddr, ReplicationError> {
        let snapshot = self.snapshot();
        let node = snapshot.nodes.get(&leader.node).ok_or(ReplicationError::UnknownNode(leader.broker_id()))?;
        let port = node.port_of(leader.shard);
        // An address, or a name resolved once per connection (a cold path).
        let mut addrs = (node.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|_| ReplicationError::UnknownNode(leader.broker_id()))?;
        addrs.next().ok_or(ReplicationError::UnknownNode(leader.broker_id()))
    }

    /// One leader's fetcher: until no local replica follows it.
    async fn follow(self: Rc<Self>, leader: ReplicaPlacement, _running: Deregister) {
        let mut link: Option<LeaderLink> = None;
        let settings = ReplicaFetch::of(&self.config);
        let backoff_max = REPLICA_FETCH_BACKOFF_MAX.max(settings.backoff);
        let mut backoff = settings.backoff;
        let mut last_error_logged: Option<Instant> = None;
        tracing::info!(shard = self.id, leader = leader.broker_id(), "follower fetcher started");
        while !self.stopping.get() {
            let replicas = self.replicas_following(leader);
            if replicas.is_empty() {
                break;
            }
            match self.fetch_round(leader, &mut link, &replicas, &settings).await {
                Ok(()) => backoff = settings.backoff,
                Err(error) => {
                    link = None;
                    if last_error_logged.is_none_or(|at| at.elapsed() >= backoff_max) {
                        last_error_logged = Some(Instant::now());
                        tracing::warn!(shard = self.id, leader = leader.broker_id(), %error, "follower fetch failed; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.notified() => break,
                    }
                    backoff = (backoff * 2).min(backoff_max);
                }
            }
        }
        tracing::info!(shard = self.id, leader = leader.broker_id(), "follower fetcher stopped");
    }

    /// Connects if need be, truncates the replicas that need it, fetches once.
    async fn fetch_round(
        &self,
        leader: ReplicaPlacement,
        link: &mut Option<LeaderLink>,
        replicas: &[Rc<Replica>],
        settings: &ReplicaFetch,
    ) -> Result<(), ReplicationError> {
        if link.is_none() {
            // A leader sends one whole batch past the bounds (Kafka's minOneMessage): up to message.max.bytes.
            let records_max = settings.response_bytes_max.max(settings.partition_bytes_max) as usize;
            let frame_max = records_max + self.config.message_max_bytes as usize + RESPONSE_FRAME_OVERHEAD_BYTES_MAX;
            *link = Some(LeaderLink::connect(self.address_of(leader)?, frame_max).await?);
        }
        let link = link.as_mut().expect("connected above");
        // Since KIP-320 a replica with epochs checks its log on each fetch;
        // only the others ask OffsetsForLeaderEpoch first.
        let due: Vec<&Rc<Replica>> =
            replicas.iter().filter(|r| r.truncation_due().is_some_and(|epoch| !r.reconciles_on_fetch(epoch))).collect();
        if !due.is_empty() {
            self.truncate(link, &due).await?;
        }
        let ready: Vec<&Rc<Replica>> = replicas.iter().filter(|r| r.truncation_due().is_none()).collect();
        self.fetch_once(link, &ready, settings).await
    }

    /// KIP-279: asks the leader where each replica's latest epoch ends there,
    /// and truncates to that (never past the replica's own end).
    async fn truncate(&self, link: &mut LeaderLink, replicas: &[&Rc<Replica>]) -> Result<(), ReplicationError> {
        let mut request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(self.replica().broker_id()));
        for replica in replicas {
            let partition = OffsetForLeaderPartition::default()
                .with_partition(replica.partition())
                .with_current_leader_epoch(replica.leader_epoch())
                .with_leader_epoch(replica.latest_epoch().unwrap_or(-1));
            let topic = OffsetForLeaderTopic::default()
                .with_topic(topic_name(replica.topic()))
                .with_partitions(vec![partition]);
            request.topics.push(topic);
        }
        let asked_in: Vec<i32> = replicas.iter().map(|r| r.leader_epoch()).collect();
        let response = link.send(&request, OFFSETS_FOR_LEADER_EPOCH_VERSION).await?;
        for topic in &response.topics {
            for answer in &topic.partitions {
                let asked = replicas
                    .iter()
                    .position(|r| r.topic() == topic.topic.as_str() && r.partition() == answer.partition);
                let Some((replica, asked_in)) = asked.map(|i| (replicas[i], asked_in[i])) else { continue };
                // An answer about another leader epoch's log cuts nothing (see `FetchPosition`).
                if replica.leader_epoch() != asked_in {
                    continue;
                }
                let Some(epoch) = replica.truncation_due() else { continue };
                if answer.error_code != KAFKA_NONE {
                    tracing::debug!(
                        topic = replica.topic(),
                        partition = replica.partition(),
                        code = answer.error_code,
                        "OffsetsForLeaderEpoch refused; retrying"
                    );
                    continue;
                }
                // An empty log has nothing to cut: it fetches from its end.
                let to = match replica.latest_epoch() {
                    Some(_) => leader_rules::truncation_offset(replica.log().log_end_offset(), answer.end_offset),
                    None => replica.log().log_end_offset(),
                };
                replica.truncate_for_epoch(to, epoch).await?;
            }
        }
        Ok(())
    }

    /// One Fetch for `replicas` from their log ends; appends what comes back
    /// and waits for it to be written before the next fetch reports it.
    async fn fetch_once(
        &self,
        link: &mut LeaderLink,
        replicas: &[&Rc<Replica>],
        settings: &ReplicaFetch,
    ) -> Result<(), ReplicationError> {
        if replicas.is_empty() {
            tokio::time::sleep(settings.backoff).await;
            return Ok(());
        }
        let snapshot = self.snapshot();
        let sent: Vec<FetchPosition> = replicas.iter().map(|r| FetchPosition::of(r)).collect();
        let topic_id = |replica: &Replica| snapshot.topic(replica.topic()).map(|t| t.id);
        let request = fetch_request(self.follower_id(), replicas, &sent, topic_id, settings);
        let response = link.send(&request, FETCH_VERSION).await?;
        let refused = apply_answer(&snapshot, replicas, &sent, &response).await?;
        // Every partition refused (a leader change on its way): wait for the metadata.
        if refused > 0 && refused == replicas.len() {
            tokio::time::sleep(settings.backoff).await;
        }
        Ok(())
    }
}

/// Where a replica stood when its fetch was sent. An answer is applied only
/// where it still stands there: while the fetch was in flight the replica
/// may have moved to a new leader epoch and been truncated for it, and the
/// old leader's records would then land past a gap, above what the new
/// leader has at those offsets (the chaos checker's "found 2": acknowledged
/// records lost). Kafka's AbstractFetcherThread drops such answers too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FetchPosition {
    fetch_offset: i64,
    leader_epoch: i32,
}

impl FetchPosition {
    fn of(replica: &Replica) -> FetchPosition {
        FetchPosition { fetch_offset: replica.log().log_end_offset(), leader_epoch: replica.leader_epoch() }
    }
}

/// Applies a Fetch answer to the replicas it was asked for (`sent[i]` is
/// where `replicas[i]` stood): appends, truncations on a diverging epoch,
/// out-of-range restarts. Returns how many partitions the leader refused.
async fn apply_answer(
    snapshot: &Snapshot,
    replicas: &[&Rc<Replica>],
    sent: &[FetchPosition],
    response: &FetchResponse,
) -> Result<usize, ReplicationError> {
    debug_assert_eq!(replicas.len(), sent.len(), "a position per replica asked for");
    let mut appended: Vec<(&Rc<Replica>, AppendInfo, i64)> = Vec::new();
    let mut refused = 0;
    for topic in &response.responses {
        let Some(name) = snapshot.topic_by_id(&topic.topic_id).map(|t| t.name.as_str()) else { continue };
        for data in &topic.partitions {
            let asked = position_of(replicas, name, data.partition_index);
            let Some((replica, asked_at)) = asked.map(|i| (replicas[i], sent[i])) else { continue };
            if FetchPosition::of(replica) != asked_at {
                tracing::debug!(
                    topic = replica.topic(),
                    partition = replica.partition(),
                    ?asked_at,
                    "follower fetch answer dropped: the replica moved while it was in flight"
                );
                continue;
            }
            if data.error_code == KAFKA_OFFSET_OUT_OF_RANGE {
                // Behind the leader's log start: start afresh there;
                // else ahead of its log: ask where it ends (Kafka's
                // `handleOutOfRangeError`).
                match data.log_start_offset > replica.log().log_end_offset() {
                    true => replica.start_at_leader_log_start(data.log_start_offset).await?,
                    false => replica.fetched_out_of_range(),
                }
                continue;
            }
            if data.error_code != KAFKA_NONE {
                refused += 1;
                tracing::debug!(
                    topic = replica.topic(),
                    partition = replica.partition(),
                    code = data.error_code,
                    "follower fetch refused for a partition"
                );
                continue;
            }
            if data.diverging_epoch.epoch >= 0 {
                let diverging = (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
                replica.truncate_diverging(diverging).await?;
                continue;
            }
            let records = whole_batches(data.records.as_deref().unwrap_or_default());
            if records.is_empty() {
                replica.set_follower_high_watermark(data.high_watermark);
                continue;
            }
            let info = replica.append_replicated(records, now_ms())?;
            appended.push((replica, info, data.high_watermark));
        }
    }
    for (replica, info, leader_hw) in appended {
        replica.wait_appended(&info).await?;
        replica.set_follower_high_watermark(leader_hw);
    }
    Ok(refused)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Where the partition stands among the replicas a request asked for.
fn position_of(replicas: &[&Rc<Replica>], topic: &str, partition: i32) -> Option<usize> {
    replicas.iter().position(|r| r.topic() == topic && r.partition() == partition)
}

/// The Fetch a follower sends: each partition from its log end, at the
/// epoch it knows, within Kafka's replica fetch bounds. A replica whose
/// topic has no id in the snapshot (deleted meanwhile) is left out.
fn fetch_request(
    follower: FollowerId,
    replicas: &[&Rc<Replica>],
    positions: &[FetchPosition],
    topic_id: impl Fn(&Replica) -> Option<uuid::Uuid>,
    settings: &ReplicaFetch,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (replica, position) in replicas.iter().zip(positions) {
        let Some(id) = topic_id(replica) else { continue };
        let partition = FetchPartition::default()
            .with_partition(replica.partition())
            .with_current_leader_epoch(position.leader_epoch)
            .with_fetch_offset(position.fetch_offset)
            .with_last_fetched_epoch(replica.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(replica.log_start_offset())
            .with_partition_max_bytes(settings.partition_bytes_max);
        match topics.last_mut().filter(|t| t.topic_id == id) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(FetchTopic::default().with_topic_id(id).with_partitions(vec![partition])),
        }
    }
    let replica_state = ReplicaState::default()
        .with_replica_id(BrokerId(follower.at.broker_id()))
        .with_replica_epoch(follower.broker_epoch);
    FetchRequest::default()
        .with_replica_state(replica_state)
        .with_max_wait_ms(settings.wait_ms_max)
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.response_bytes_max)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The whole batches at the front of `records`: a leader may end an answer
/// with part of a batch (Kafka's does at max bytes); the rest comes next time.
fn whole_batches(records: &[u8]) -> &[u8] {
    let mut end = 0;
    while let Ok(header) = BatchHeader::parse(&records[end..]) {
        let next = end + header.total_bytes();
        if header.total_bytes() == 0 || next > records.len() {
            break;
        }
        end = next;
    }
    &records[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records;

    /// The chaos checker's "found 2", reduced: a follower's fetch is in
    /// flight to the old leader when the replica moves to a new leader
    /// epoch; the old leader's answer arrives afterwards. It must not be
    /// appended (it would land where the new leader has other records).
    #[test]
    fn an_answer_for_a_replica_that_moved_while_it_was_in_flight_is_dropped() {
        use std::collections::BTreeMap;

        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

        use crate::cluster::{NodeId, PartitionAssignment, ShardId};
        use crate::metadata::MetadataRecord;
        use crate::shard::Partitions;

        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let broker = BrokerConfig { data_dir: dir.path().into(), log_direct_io: false, ..BrokerConfig::default() };
            let at = |node| ReplicaPlacement::new(NodeId(node), ShardId(0));
            let (here, id) = (at(1), uuid::Uuid::from_u128(1));
            let mut snapshot = Snapshot::default();
            let partitions = vec![PartitionAssignment::led_by_first(vec![at(2), at(1), at(3)])];
            snapshot.apply(&MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() });
            let logs = Partitions::new(&broker);
            logs.sync(here, &snapshot, &broker, true).await;
            let replica = logs.get("t", 0).unwrap();
            assert_eq!(replica.followed_leader(), Some(at(2)));
            let answer = |base_offset| {
                let mut batch = records::build_keyed(1, &[(None, Some(b"from the old leader"))]);
                crate::model::batch::set_base_offset(&mut batch, base_offset);
                let partition = PartitionData::default().with_high_watermark(1).with_records(Some(batch.into()));
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![partition])])
            };
            let asked = FetchPosition::of(&replica);

            // Node 3 takes over at the next leader epoch meanwhile.
            let mut moved = snapshot.topic("t").unwrap().partitions[0].clone();
            moved.leader = Some(at(3));
            moved.leader_epoch += 1;
            moved.partition_epoch += 1;
            snapshot.apply(&MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: moved });
            logs.sync(here, &snapshot, &broker, true).await;
            assert_eq!(replica.followed_leader(), Some(at(3)));

            let refused = apply_answer(&snapshot, &[&replica], &[asked], &answer(0)).await.unwrap();
            assert_eq!(refused, 0);
            assert_eq!(replica.log().log_end_offset(), 0, "the old leader's answer is dropped");
            // The same answer to a fetch sent from where the replica stands now is appended.
            let now = FetchPosition::of(&replica);
            apply_answer(&snapshot, &[&replica], &[now], &answer(0)).await.unwrap();
            assert_eq!(replica.log().log_end_offset(), 1);
            // And one to a fetch sent from another offset is dropped too.
            let behind = FetchPosition { fetch_offset: 0, ..FetchPosition::of(&replica) };
            apply_answer(&snapshot, &[&replica], &[behind], &answer(1)).await.unwrap();
            assert_eq!(replica.log().log_end_offset(), 1, "appended past a gap otherwise");
            logs.close_all().await;
        });
    }

    #[test]
    fn only_whole_batches_are_appended() {
        let mut two = records::build_keyed(1, &[(None, Some(b"a"))]);
        let first = two.len();
        two.extend(records::build_keyed(1, &[(None, Some(b"b"))]));
        assert_eq!(whole_batches(&two).len(), two.len());
        assert_eq!(whole_batches(&two[..two.len() - 1]).len(), first, "a cut batch waits for the next fetch");
        assert_eq!(whole_batches(&two[..5]).len(), 0);
        assert_eq!(whole_batches(&[]).len(), 0);
    }
}
