//! The consumer-group coordinator: Kafka's classic group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and the groups' committed offsets, as
//! Kafka's GroupCoordinator and GroupMetadata run them.
//!
//! Sans-IO and single-threaded: one `Coordinator` lives on the shard that
//! owns its groups. It takes domain commands plus the current time
//! (`now_ms`, Unix epoch milliseconds, as `model::now_ms()` gives) and answers
//! with domain results. Requests that must wait for other members (a join
//! until the join phase completes, a follower's sync until the leader's
//! assignment) get a `Reply::Waiting` oneshot that a later call completes.
//! It owns no timers: the shard calls `tick` about every 100 ms and every
//! timeout (session, rebalance, initial delay, pending sync) fires there.
//!
//! Offsets are applied only once durable: the shard validates a commit
//! (`validate_commit`), appends it to the offsets topic, then `apply_commit`s
//! it; at start-up it replays the topic through `load_commit` and
//! `load_tombstone`. Group membership itself is not persisted.

mod admin;
mod error;
/// The coordinator driven by a sequence of choices (unit tests and fuzz targets).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
#[allow(clippy::module_inception)]
mod group;
mod join;
mod member;
mod offsets;
pub mod offsets_topic;
mod ownership;
mod rebalance;
mod sync;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashMap;

pub use error::GroupError;
pub use types::{GroupState, Heartbeat, JoinGroup, LeaveGroup, LeavingMember, OffsetAndMetadata, Protocol, SyncGroup};

use group::Group;

/// Kafka's group.min.session.timeout.ms default.
pub const SESSION_TIMEOUT_MS_MIN_DEFAULT: i32 = 6_000;
/// Kafka's group.max.session.timeout.ms default.
pub const SESSION_TIMEOUT_MS_MAX_DEFAULT: i32 = 1_800_000;
/// Kafka's group.initial.rebalance.delay.ms default.
pub const INITIAL_REBALANCE_DELAY_MS_DEFAULT: i32 = 3_000;
/// Kafka's offset.metadata.max.bytes default.
pub const OFFSET_METADATA_BYTES_MAX_DEFAULT: usize = 4096;
/// Kafka's offsets.retention.minutes default (7 days), in ms.
#[cfg(test)]
pub const OFFSETS_RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;

/// group.max.size default. Kafka's is unlimited (Integer.MAX_VALUE); each
/// member costs its JoinGroup's protocols plus about 1 KiB, every join phase
/// is O(members²) and the leader's join answer carries every member's
/// metadata, so the broker bounds it.
pub const GROUP_SIZE_MAX_DEFAULT: usize = 1_000;

/// The coordinator's limits; Kafka's broker config names with `_` for `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// How long an Empty group's first rebalance waits for more members.
    pub group_initial_rebalance_delay_ms: i32,
    /// group.max.size: members plus pending MEMBER_ID_REQUIRED joins.
    pub group_size_max: usize,
    pub offset_metadata_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            group_min_session_timeout_ms: SESSION_TIMEOUT_MS_MIN_DEFAULT,
            group_max_session_timeout_ms: SESSION_TIMEOUT_MS_MAX_DEFAULT,
            group_initial_rebalance_delay_ms: INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            group_size_max: GROUP_SIZE_MAX_DEFAULT,
            offset_metadata_bytes_max: OFFSET_METADATA_BYTES_MAX_DEFAULT,
        }
    }
}

/// What every group operation needs besides the group: limits and the time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub config: &'a GroupConfig,
    pub now_ms: i64,
}

/// All groups coordinated by one shard.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    /// Groups reset because an operation on them panicked or broke an
    /// invariant (see `guarded`): bugs, each logged.
    groups_reset: u64,
    /// Offsets-topic partitions whose groups are being loaded (ownership.rs).
    loading: ownership::Loading,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        assert!(config.group_min_session_timeout_ms <= config.group_max_session_timeout_ms);
        assert!(config.group_initial_rebalance_delay_ms >= 0 && config.group_size_max >= 1);
        // Commit metadata is stored as an i16-length string in the offsets topic.
        assert!(config.offset_metadata_bytes_max <= offsets_topic::STRING_BYTES_MAX);
        Coordinator { config, groups: HashMap::new(), groups_reset: 0, loading: ownership::Loading::default() }
    }

    /// The group's state, or None if the coordinator does not know it.
    #[cfg(test)]
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// The group's generation, or None if the coordinator does not know it.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn generation_id(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation_id)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Drives every timeout: sessions, MEMBER_ID_REQUIRED joiners, join
    /// phases (rebalance timeout and initial delay) and pending syncs. Call
    /// about every 100 ms; timeouts fire late by at most that interval.
    pub fn tick(&mut self, now_ms: i64) {
        let ctx = Ctx { config: &self.config, now_ms };
        for group in self.groups.values_mut() {
            guarded(group, ctx, Check::Invariants, &mut self.groups_reset, |group, ctx| group.tick(ctx));
        }
    }

    /// Every group's first broken invariant (none, unless there is a bug).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn broken_invariants(&self) -> Vec<(String, &'static str)> {
        let broken = self.groups.values().filter_map(|g| Some((g.id.clone(), g.broken_invariant(&self.config)?)));
        broken.collect()
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn groups_reset(&self) -> u64 {
        self.groups_reset
    }
}

/// Whether `guarded` checks the group's invariants after the operation:
/// requests that only refresh a session (Heartbeat, OffsetCommit) skip it,
/// so that a flood of them costs O(1) each rather than O(group size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Invariants,
    PanicsOnly,
}

/// Runs one operation on one group. A panic inside it, or an invariant it
/// leaves broken, is a bug in this module, but must neither kill the task
/// that called it (the shard's timer task drives every group's timeouts)
/// nor leave the group in a state that fails again at every later tick. So
/// it is logged, the group loses its members (their waiting requests get
/// UNKNOWN_MEMBER_ID, and clients rejoin), keeps its committed offsets, and
/// every other group goes on. None after such a bug: the caller answers
/// UNKNOWN_SERVER_ERROR, as Kafka does for an unexpected exception.
fn guarded<R>(
    group: &mut Group,
    ctx: Ctx,
    check: Check,
    groups_reset: &mut u64,
    operation: impl FnOnce(&mut Group, Ctx) -> R,
) -> Option<R> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| operation(&mut *group, ctx)));
    let bug = match &outcome {
        Err(payload) => {
            let message = payload.downcast_ref::<&str>().copied();
            let message = message.or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            Some(format!("panicked: {}", message.unwrap_or("(no message)")))
        }
        Ok(_) if check == Check::Invariants => group.broken_invariant(ctx.config).map(|why| format!("broke: {why}")),
        Ok(_) => None,
    };
    let Some(bug) = bug else { return outcome.ok() };
    *groups_reset += 1;
    tracing::error!(group = %group.id, state = group.state.as_str(), members = group.members.len(),
        "BUG: a group operation {bug}; the group's members are dropped and must rejoin");
    group.reset_after_bug(ctx.now_ms);
    None
}
