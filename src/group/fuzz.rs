//! A driver of the coordinator by a sequence of choices: JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, DeleteGroups, the
//! offsets partition moving away and back, and time,
//! from clients that mix well-formed requests with stale, foreign and
//! nonsensical ids. After every step the coordinator must not have panicked,
//! every invariant must hold, and no group may have been reset by `guarded`;
//! at the end every request still waiting must be answered once time runs on.
//! Any failure panics with the last requests.
//!
//! The choices come from a seed (the unit test `tests::random`) or from the
//! fuzzer's bytes (`crate::fuzz::group_events`), so both explore with the
//! same clients.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;

use super::types::*;
use super::*;
use crate::model::TopicPartition;

const GROUPS: [&str; 2] = ["g", "h"];
const INSTANCES: [&str; 3] = ["ia", "ib", "ic"];
const PROTOCOLS: [&str; 3] = ["range", "rr", "sticky"];
/// Long enough for every timeout the requests can set to fire.
const DRAIN_MS: i64 = 2 * (NEW_MEMBER_JOIN_MS + 60_000 + 30_000);
/// Bounds the driver's running time, not the coordinator's.
const TICKS_PER_ADVANCE_MAX: i64 = 40;
const NEW_MEMBER_JOIN_MS: i64 = member::NEW_MEMBER_JOIN_TIMEOUT_MS;

/// Where the choices come from.
pub enum Choices<'a> {
    /// splitmix64: deterministic, so a failing seed replays exactly (the
    /// unit tests' random sequences).
    #[cfg(test)]
    Seeded(u64),
    /// One byte per choice; the sequence ends when they run out.
    Bytes(&'a [u8]),
}

impl Choices<'_> {
    fn next(&mut self) -> u64 {
        match self {
            #[cfg(test)]
            Choices::Seeded(state) => {
                *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = *state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            }
            Choices::Bytes(bytes) => match bytes.split_first() {
                Some((&first, rest)) => {
                    *bytes = rest;
                    first as u64
                }
                None => 0,
            },
        }
    }

    fn is_exhausted(&self) -> bool {
        matches!(self, Choices::Bytes(bytes) if bytes.is_empty())
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names.iter().map(|n| Protocol { name: n.to_string(), metadata: Bytes::from(format!("sub-{n}")) }).collect()
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn offset(offset: i64, commit_timestamp_ms: i64) -> OffsetAndMetadata {
    OffsetAndMetadata { offset, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms }
}

/// What the clients have learned from the coordinator's answers.
#[derive(Default)]
struct Seen {
    /// (group, member id, instance id) of every member id handed out.
    members: Vec<(String, String, Option<String>)>,
    generations: Vec<i32>,
}

enum Waiting {
    Join { group: String, instance: Option<String>, reply: Reply<JoinResponse> },
    Sync(Reply<SyncResponse>),
}

struct Run<'a> {
    rng: Choices<'a>,
    c: Coordinator,
    now_ms: i64,
    seen: Seen,
    waiting: Vec<Waiting>,
    log: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(mut rng: Choices<'a>) -> Run<'a> {
        let config = GroupConfig {
            group_initial_rebalance_delay_ms: rng.pick(&[0, 3_000]),
            group_size_max: rng.pick(&[2, 3, 100]),
            ..GroupConfig::default()
        };
        Run { rng, c: Coordinator::new(config), now_ms: 0, seen: Seen::default(), waiting: Vec::new(), log: Vec::new() }
    }

    /// A current member half the time, else any id a client has seen.
    fn member(&mut self, group: &str) -> (String, Option<String>) {
        let current = self.c.describe_group(group).members;
        if !current.is_empty() && self.rng.percent(50) {
            let m = &current[self.rng.below(current.len())];
            return (m.member_id.clone(), m.group_instance_id.clone());
        }
        let known: Vec<_> = self.seen.members.iter().filter(|(g, ..)| g == group).collect();
        if known.is_empty() || self.rng.percent(5) {
            return (self.rng.pick(&["", "ghost"]).to_string(), None);
        }
        let (_, id, instance) = known[self.rng.below(known.len())].clone();
        let instance = if self.rng.percent(10) { self.instance() } else { instance };
        (id, instance)
    }

    fn instance(&mut self) -> Option<String> {
        self.rng.percent(50).then(|| self.rng.pick(&INSTANCES).to_string())
    }

    fn generation(&mut self, group: &str) -> i32 {
        match self.rng.below(6) {
            0..=2 => self.c.generation_id(group).unwrap_or(-1),
            3 => self.c.generation_id(group).unwrap_or(0) - 1,
            4 if !self.seen.generations.is_empty() => self.rng.pick(&self.seen.generations),
            _ => self.rng.pick(&[-1, 0, 1, 2]),
        }
    }

    fn protocols(&mut self) -> Vec<Protocol> {
        let mut names: Vec<&str> = PROTOCOLS.iter().copied().filter(|_| self.rng.percent(60)).collect();
        if self.rng.percent(50) {
            names.reverse();
        }
        protocols(&names)
    }

    fn step(&mut self) {
        let group = self.rng.pick(&GROUPS).to_string();
        match self.rng.below(100) {
            0..=34 => self.join(&group),
            35..=54 => self.sync(&group),
            55..=66 => {
                let (member_id, instance) = self.member(&group);
                let generation_id = self.generation(&group);
                let beat = Heartbeat { group_id: group.clone(), generation_id, member_id, group_instance_id: instance };
                self.log.push(format!("{beat:?}"));
                let _ = self.c.heartbeat(beat, self.now_ms);
            }
            67..=74 => {
                let (member_id, instance) = self.member(&group);
                let member_id = if self.rng.percent(20) { String::new() } else { member_id };
                let leaving = LeavingMember { member_id, group_instance_id: instance };
                self.log.push(format!("leave {group} {leaving:?}"));
                let _ = self.c.leave(LeaveGroup { group_id: group, members: vec![leaving] }, self.now_ms);
            }
            75..=82 => {
                let (member_id, instance) =
                    if self.rng.percent(30) { (String::new(), None) } else { self.member(&group) };
                let generation_id = self.generation(&group);
                self.log.push(format!("commit {group} {generation_id} {member_id:?} {instance:?}"));
                if self.c.validate_commit(&group, generation_id, &member_id, instance.as_deref(), self.now_ms).is_ok() {
                    self.c.apply_commit(&group, [(tp("t", 0), offset(self.now_ms, self.now_ms))], self.now_ms);
                }
            }
            83..=84 => {
                self.log.push(format!("delete {group}"));
                let _ = self.c.delete_group(&group);
                let _ = (self.c.describe_group(&group), self.c.list_groups(&[]));
            }
            85..=89 => {
                // A client gives up: its connection, and the reply, go away.
                if !self.waiting.is_empty() {
                    let gone = self.rng.below(self.waiting.len());
                    self.log.push(format!("drop waiter {gone}"));
                    self.waiting.swap_remove(gone);
                }
            }
            90..=91 => {
                // The group's offsets partition moves away, and maybe comes
                // back, loaded from its log (ownership.rs).
                let partition = offsets_topic::partition_for(&group);
                self.log.push(format!("unload partition {partition}"));
                self.c.unload_partition(partition);
                if self.rng.percent(50) {
                    self.log.push(format!("load partition {partition}"));
                    self.c.begin_loading(partition);
                    self.c.load_commit(&group, tp("t", 0), offset(self.now_ms, self.now_ms));
                    self.c.finish_loading(partition);
                }
            }
            _ => {
                let advance_ms = self.rng.pick(&[100, 1_000, 5_000, 12_000, 40_000]) as i64;
                self.log.push(format!("advance {advance_ms} ms"));
                self.advance(advance_ms);
            }
        }
        self.collect_answers();
    }

    fn join(&mut self, group: &str) {
        let (member_id, instance) =
            if self.rng.percent(40) { (String::new(), self.instance()) } else { self.member(group) };
        let join = JoinGroup {
            group_id: group.to_string(),
            member_id,
            group_instance_id: instance.clone(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: self.rng.pick(&[5_000, 6_000, 10_000, 30_000]),
            rebalance_timeout_ms: self.rng.pick(&[1_000, 10_000, 60_000]),
            protocol_type: self.rng.pick(&["consumer", "consumer", "consumer", "connect", ""]).to_string(),
            protocols: self.protocols(),
            require_known_member_id: self.rng.percent(50),
            supports_skip_assignment: self.rng.percent(50),
        };
        self.log.push(format!("{join:?}"));
        let reply = self.c.join(join, self.now_ms);
        self.waiting.push(Waiting::Join { group: group.to_string(), instance, reply });
    }

    fn sync(&mut self, group: &str) {
        let (member_id, instance) = self.member(group);
        let members: Vec<String> =
            self.seen.members.iter().filter(|(g, ..)| g == group).map(|(_, id, _)| id.clone()).collect();
        let assignments =
            members.into_iter().filter(|_| self.rng.percent(70)).map(|id| (id, Bytes::from_static(b"a"))).collect();
        let sync = SyncGroup {
            group_id: group.to_string(),
            generation_id: self.generation(group),
            member_id,
            group_instance_id: instance,
            protocol_type: self.rng.pick(&[None, Some("consumer".to_string()), Some("connect".to_string())]),
            protocol_name: self.rng.pick(&[None, Some("range".to_string()), Some("rr".to_string())]),
            assignments,
        };
        self.log.push(format!("{sync:?}"));
        let reply = self.c.sync(sync, self.now_ms);
        self.waiting.push(Waiting::Sync(reply));
    }

    /// Time runs on as the shard's timer drives it: a tick every 100 ms, or
    /// fewer over long stretches (timeouts then fire up to a tick late).
    fn advance(&mut self, advance_ms: i64) {
        let end_ms = self.now_ms + advance_ms;
        let tick_ms = (advance_ms / TICKS_PER_ADVANCE_MAX).max(100);
        while self.now_ms < end_ms {
            self.now_ms = (self.now_ms + tick_ms).min(end_ms);
            self.c.tick(self.now_ms);
        }
    }

    fn collect_answers(&mut self) {
        let mut still = Vec::new();
        for waiting in self.waiting.drain(..) {
            match waiting {
                Waiting::Join { group, instance, mut reply } => match reply.try_take() {
                    None => still.push(Waiting::Join { group, instance, reply }),
                    Some(Ok(joined)) => {
                        self.seen.generations.push(joined.generation_id);
                        self.seen.members.push((group, joined.member_id, instance));
                    }
                    Some(Err(GroupError::MemberIdRequired { member_id })) => {
                        self.seen.members.push((group, member_id, instance))
                    }
                    Some(Err(_)) => {}
                },
                Waiting::Sync(mut reply) => {
                    if reply.try_take().is_none() {
                        still.push(Waiting::Sync(reply));
                    }
                }
            }
        }
        self.waiting = still;
    }

    fn check(&self, seed: &str, step: usize) {
        let broken = self.c.broken_invariants();
        let reset = self.c.groups_reset();
        if !broken.is_empty() || reset > 0 {
            let recent = &self.log[self.log.len().saturating_sub(30)..];
            panic!(
                "seed {seed} step {step}: broken {broken:?}, groups reset {reset}; last requests:\n{}",
                recent.join("\n")
            );
        }
    }
}

/// Runs at most `steps` steps (fewer if the bytes run out); panics on any
/// broken invariant, reset group, panic or request left waiting; `seed`
/// names the sequence in that message.
pub fn run_sequence(choices: Choices<'_>, steps: usize, seed: &str) {
    let mut run = Run::new(choices);
    for step in 0..steps {
        if run.rng.is_exhausted() {
            break;
        }
        if catch_unwind(AssertUnwindSafe(|| run.step())).is_err() {
            let recent = &run.log[run.log.len().saturating_sub(30)..];
            panic!("seed {seed} step {step}: the coordinator panicked; last requests:\n{}", recent.join("\n"));
        }
        run.check(seed, step);
    }
    // Nobody waits forever: every join and sync still waiting is answered
    // once the timeouts it could depend on have passed.
    run.advance(DRAIN_MS);
    run.collect_answers();
    run.check(seed, steps);
    assert_eq!(run.waiting.len(), 0, "seed {seed}: requests still waiting after {DRAIN_MS} ms");
}
