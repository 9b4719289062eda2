//! Loading a partition's groups when the shard comes to lead it, and
//! forgetting them when it stops (Kafka's onElection / onResignation).

use super::*;
use crate::group::offsets_topic::partition_for;

/// A group whose offsets live in another partition than GROUP's.
const OTHER_GROUP: &str = "h";

fn join_other(c: &mut Coordinator, now_ms: i64) {
    let join = JoinGroup { group_id: OTHER_GROUP.into(), ..join_request("", "other") };
    answer(&mut c.join(join, now_ms)).unwrap();
}

#[test]
fn unloading_answers_waiting_joins_and_syncs_not_coordinator_and_keeps_other_partitions() {
    assert_ne!(partition_for(GROUP), partition_for(OTHER_GROUP));
    let mut c = coordinator();
    join_other(&mut c, 0);
    let a = join_alone(&mut c, "a", 0);
    let mut b_join = c.join(join_request("", "b"), 100);
    let mut a_join = c.join(join_request(&a, "a"), 200);
    let b = answer(&mut b_join).unwrap().member_id;
    answer(&mut a_join).unwrap();
    // Generation 2 completing: the follower's sync waits for the leader's.
    let mut b_sync = c.sync(sync_request(2, &b, &[]), 300);
    assert_waiting(&mut b_sync);
    assert_eq!(c.unload_partition(partition_for(GROUP)), 1);
    assert_eq!(answer(&mut b_sync), Err(GroupError::NotCoordinator));

    // Led again, then lost while a join waits for the rebalance it started.
    let a = join_alone(&mut c, "a", 1_000);
    let mut b_join = c.join(join_request("", "b"), 1_100);
    assert_waiting(&mut b_join);
    assert!(c.heartbeat(heartbeat(1, &a), 1_200).is_err(), "a is to rejoin");
    assert_eq!(c.unload_partition(partition_for(GROUP)), 1);
    assert_eq!(answer(&mut b_join), Err(GroupError::NotCoordinator));
    assert_eq!(c.group_state(GROUP), None, "the group is forgotten");
    assert!(c.group_state(OTHER_GROUP).is_some(), "a group of another partition stays");
    assert!(c.broken_invariants().is_empty());
}

/// Found 4: the group moved away and came back while its members had
/// rejoined elsewhere under new member ids. Had the coordinator kept the
/// members of its last stay, the new join would wait for them (their
/// session, 10 s here) instead of completing.
#[test]
fn a_group_that_comes_back_holds_its_committed_offsets_and_none_of_its_old_members() {
    let mut c = coordinator();
    let old = join_alone(&mut c, "a", 0);
    c.apply_commit(GROUP, [(tp("t", 0), offset(5, 10))], 10);
    let partition = partition_for(GROUP);
    c.unload_partition(partition);

    // Back here: loaded from the log, which holds a later commit made elsewhere.
    c.begin_loading(partition);
    assert!(c.is_loading(GROUP) && !c.is_loading(OTHER_GROUP));
    c.load_commit(GROUP, tp("t", 0), offset(7, 1_000));
    c.finish_loading(partition);
    assert!(!c.is_loading(GROUP));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    assert_eq!(c.fetch_offsets(GROUP, Some(&[tp("t", 0)]))[0].1.offset, 7);

    assert!(matches!(c.heartbeat(heartbeat(1, &old), 2_000), Err(GroupError::UnknownMemberId { .. })));
    let joined = answer(&mut c.join(join_request("", "a"), 2_000)).expect("no old member to wait for");
    assert_eq!(joined.members.len(), 1);
}

#[test]
fn leading_again_in_a_new_epoch_drops_what_was_held() {
    let mut c = coordinator();
    join_alone(&mut c, "a", 0);
    c.apply_commit(GROUP, [(tp("t", 1), offset(3, 10))], 10);
    // The partition was led elsewhere in between (a snapshot this shard skipped): nothing held is current.
    c.begin_loading(partition_for(GROUP));
    assert_eq!(c.group_state(GROUP), None);
    c.finish_loading(partition_for(GROUP));
    assert_eq!(c.fetch_offsets(GROUP, Some(&[tp("t", 1)]))[0].1.offset, -1);
}
