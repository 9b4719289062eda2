//! Timeouts driven by `tick`: sessions, rebalance timeouts, pending syncs.

use super::*;

const SESSION: i64 = SESSION_MS as i64;
const REBALANCE: i64 = REBALANCE_MS as i64;

/// Two members a (leader) and b, Stable in generation 2.
fn stable_pair(c: &mut Coordinator) -> (String, String) {
    let a = join_alone(c, "a", 0);
    let mut b_join = c.join(join_request("", "b"), 0);
    answer(&mut c.join(join_request(&a, "a"), 0)).unwrap();
    let b = answer(&mut b_join).unwrap().member_id;
    answer(&mut c.sync(sync_request(2, &a, &[(&a, "p0"), (&b, "p1")]), 0)).unwrap();
    answer(&mut c.sync(sync_request(2, &b, &[]), 0)).unwrap();
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    (a, b)
}

#[test]
fn a_silent_member_is_evicted_after_its_session_timeout() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    // a keeps heartbeating, b goes silent.
    for now in (3_000..SESSION).step_by(3_000) {
        c.heartbeat(heartbeat(2, &a), now).unwrap();
        c.tick(now);
    }
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    c.tick(SESSION);
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
    assert!(matches!(c.heartbeat(heartbeat(2, &b), SESSION + 1), Err(GroupError::UnknownMemberId { .. })));
    assert_eq!(c.heartbeat(heartbeat(2, &a), SESSION + 1), Err(GroupError::RebalanceInProgress));
    let rejoined = answer(&mut c.join(join_request(&a, "a"), SESSION + 2)).unwrap();
    assert_eq!(rejoined.generation_id, 3);
    assert_eq!(rejoined.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    let mut a_join = c.join(join_request(&a, "a"), 1_000);
    // b heartbeats (so its session stays alive) but never rejoins.
    for now in (2_000..1_000 + REBALANCE).step_by(2_000) {
        assert_eq!(c.heartbeat(heartbeat(2, &b), now), Err(GroupError::RebalanceInProgress));
        c.tick(now);
    }
    assert_waiting(&mut a_join);
    c.tick(1_000 + REBALANCE);
    let joined = answer(&mut a_join).unwrap();
    assert_eq!(joined.generation_id, 3);
    let ids: Vec<&str> = joined.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, [a.as_str()]);
    assert!(matches!(c.heartbeat(heartbeat(3, &b), 1_000 + REBALANCE), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn a_leader_that_does_not_rejoin_is_replaced() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    // New subscription metadata: a follower's rejoin starts a rebalance.
    let changed = vec![Protocol { name: "range".into(), metadata: Bytes::from("sub-more-topics") }];
    let mut b_join = c.join(JoinGroup { protocols: changed, ..join_request(&b, "b") }, 0);
    // a stays alive but never rejoins.
    for now in (3_000..REBALANCE).step_by(3_000) {
        assert_eq!(c.heartbeat(heartbeat(2, &a), now), Err(GroupError::RebalanceInProgress));
        c.tick(now);
    }
    assert_waiting(&mut b_join);
    c.tick(REBALANCE);
    let joined = answer(&mut b_join).unwrap();
    assert_eq!(joined.leader_id, b);
    assert_eq!(joined.members.len(), 1);
}

#[test]
fn waiting_join_and_sync_fail_when_their_member_is_removed() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    let mut c_join = c.join(join_request("", "c"), 0);
    let mut a_join = c.join(join_request(&a, "a"), 0);
    let mut b_join = c.join(join_request(&b, "b"), 0);
    let c_id = answer(&mut c_join).unwrap().member_id;
    answer(&mut a_join).unwrap();
    answer(&mut b_join).unwrap();
    let mut b_sync = c.sync(sync_request(3, &b, &[]), 0);
    let leave =
        LeaveGroup { group_id: GROUP.into(), members: vec![LeavingMember { member_id: b, group_instance_id: None }] };
    c.leave(leave, 10).unwrap();
    assert!(matches!(answer(&mut b_sync), Err(GroupError::UnknownMemberId { .. })));
    // The rebalance the leave started: c waits in a join that c's removal fails.
    let mut c_rejoin = c.join(join_request(&c_id, "c"), 20);
    let leave = LeaveGroup {
        group_id: GROUP.into(),
        members: vec![LeavingMember { member_id: c_id, group_instance_id: None }],
    };
    c.leave(leave, 30).unwrap();
    assert!(matches!(answer(&mut c_rejoin), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn a_pending_follower_sync_is_told_to_rejoin_when_a_rebalance_starts() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    let mut a_join = c.join(join_request(&a, "a"), 0);
    let mut b_join = c.join(join_request(&b, "b"), 0);
    answer(&mut a_join).unwrap();
    answer(&mut b_join).unwrap();
    let mut b_sync = c.sync(sync_request(3, &b, &[]), 0);
    assert_waiting(&mut b_sync);
    let _d = c.join(join_request("", "d"), 10);
    assert_eq!(answer(&mut b_sync), Err(GroupError::RebalanceInProgress));
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut c = coordinator();
    let (a, b) = stable_pair(&mut c);
    let mut a_join = c.join(join_request(&a, "a"), 0);
    let mut b_join = c.join(join_request(&b, "b"), 0);
    answer(&mut a_join).unwrap();
    answer(&mut b_join).unwrap();
    answer(&mut c.sync(sync_request(3, &a, &[(&a, "p0,p1")]), 100)).unwrap();
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    for now in (3_000..REBALANCE).step_by(3_000) {
        c.heartbeat(heartbeat(3, &a), now).unwrap();
        c.heartbeat(heartbeat(3, &b), now).unwrap();
        c.tick(now);
    }
    c.tick(REBALANCE);
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
    assert!(matches!(c.heartbeat(heartbeat(3, &b), REBALANCE), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn the_last_member_timing_out_empties_the_group() {
    let mut c = coordinator();
    join_alone(&mut c, "a", 0);
    c.tick(SESSION);
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    assert_eq!(c.generation_id(GROUP), Some(2));
}
