//! Seeded random sequences of JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, DeleteGroups and time, from clients that mix well-formed
//! requests with stale, foreign and nonsensical ids. After every step the
//! coordinator must not have panicked, every invariant must hold, and no
//! group may have been reset by `guarded`; at the end of a sequence every
//! request still waiting must be answered once time runs on.

use crate::group::fuzz::{run_sequence, Choices};

const SEQUENCES: u64 = 1_000;
const STEPS: usize = 250;

#[test]
fn random_request_sequences_keep_every_invariant() {
    for seed in 0..SEQUENCES {
        run_sequence(Choices::Seeded(seed), STEPS, &seed.to_string());
    }
}
