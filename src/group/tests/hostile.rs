//! Requests no well-behaved client sends, and bugs: the coordinator answers
//! them with an error and its invariants hold; a bug costs one group its
//! members, never the shard its timer task.

use super::*;

fn v4_join(member_id: &str, client_id: &str) -> JoinGroup {
    JoinGroup { require_known_member_id: true, ..join_request(member_id, client_id) }
}

/// Issue 13, defect 6: a static member "ia" (protocol "range"), then a v4
/// client that is told MEMBER_ID_REQUIRED and rejoins with that id, "ia"'s
/// instance id and a protocol nobody else supports. The rejoin took over
/// "ia" without replacing its member, and the next completed join phase
/// found no common protocol and panicked the shard's timer task.
#[test]
fn a_pending_member_cannot_take_a_static_members_instance_id() {
    let mut c = coordinator();
    let a = answer(&mut c.join(static_join("", "a", "ia"), 0)).unwrap();
    answer(&mut c.sync(SyncGroup { group_instance_id: Some("ia".into()), ..sync_request(1, &a.member_id, &[]) }, 0))
        .unwrap();

    let Err(GroupError::MemberIdRequired { member_id: pending }) = answer(&mut c.join(v4_join("", "b"), 10)) else {
        panic!("a v4 first join is told to come back with a member id");
    };
    let hostile = JoinGroup {
        group_instance_id: Some("ia".into()),
        protocols: protocols(&["nobody-else"]),
        ..v4_join(&pending, "b")
    };
    let refused = answer(&mut c.join(hostile, 20)).unwrap_err();
    assert_eq!(refused, GroupError::PendingMemberWithInstanceId { member_id: pending.clone() });
    assert_eq!(c.broken_invariants(), []);

    // The pending id is still good for an ordinary rejoin.
    let mut b_join = c.join(v4_join(&pending, "b"), 30);
    let a_rejoined = answer(&mut c.join(static_join(&a.member_id, "a", "ia"), 40)).unwrap();
    let b_joined = answer(&mut b_join).unwrap();
    assert_eq!((a_rejoined.generation_id, b_joined.generation_id), (2, 2));
    assert_eq!((b_joined.member_id.as_str(), a_rejoined.protocol_name.as_deref()), (pending.as_str(), Some("range")));
    let a_sync = SyncGroup { group_instance_id: Some("ia".into()), ..sync_request(2, &a.member_id, &[]) };
    let mut a_synced = c.sync(a_sync, 50);
    answer(&mut c.sync(sync_request(2, &pending, &[]), 60)).unwrap();
    answer(&mut a_synced).unwrap();

    // Time runs past every timeout (the tick that used to panic): both stay.
    for now_ms in (1..=40).map(|s| s * 1_000) {
        let a_beat = Heartbeat { group_instance_id: Some("ia".into()), ..heartbeat(2, &a.member_id) };
        assert_eq!(c.heartbeat(a_beat, now_ms), Ok(()));
        assert_eq!(c.heartbeat(heartbeat(2, &pending), now_ms), Ok(()));
        c.tick(now_ms);
    }
    assert_eq!(c.groups_reset(), 0, "no bug was hit");
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    assert_eq!(c.describe_group(GROUP).members.len(), 2);
}

/// group.max.size counts members and the pending ids of MEMBER_ID_REQUIRED
/// joins, so that neither a flood of first joins nor of members can grow a
/// group past it; existing members keep their places.
#[test]
fn group_max_size_bounds_members_and_pending_joins() {
    let mut c =
        Coordinator::new(GroupConfig { group_initial_rebalance_delay_ms: 0, group_size_max: 2, ..Default::default() });
    let a = join_alone(&mut c, "a", 0);
    let Err(GroupError::MemberIdRequired { member_id: pending }) = answer(&mut c.join(v4_join("", "b"), 10)) else {
        panic!("MEMBER_ID_REQUIRED expected");
    };
    for (i, client) in ["c", "d", "e"].iter().enumerate() {
        let now_ms = 20 + i as i64;
        assert_eq!(answer(&mut c.join(v4_join("", client), now_ms)), Err(GroupError::GroupMaxSizeReached));
        assert_eq!(answer(&mut c.join(join_request("", client), now_ms)), Err(GroupError::GroupMaxSizeReached));
        assert_eq!(answer(&mut c.join(static_join("", client, client), now_ms)), Err(GroupError::GroupMaxSizeReached));
    }
    assert_eq!(c.describe_group(GROUP).members.len(), 1);

    // The pending member takes its reserved place; the member rejoins.
    let mut b_join = c.join(v4_join(&pending, "b"), 100);
    let a_rejoined = answer(&mut c.join(join_request(&a, "a"), 110)).unwrap();
    assert_eq!(answer(&mut b_join).unwrap().generation_id, 2);
    assert_eq!(a_rejoined.members.len(), 2, "the leader sees both members");
    assert_eq!(answer(&mut c.join(join_request("", "f"), 120)), Err(GroupError::GroupMaxSizeReached));
    assert_eq!(c.broken_invariants(), []);
    assert_eq!(c.groups_reset(), 0);
}

/// A bug (here: state corrupted by hand) resets only its group, and the
/// timer that found it goes on driving every other group.
#[test]
fn a_bug_in_one_group_resets_it_and_spares_the_others() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    let mut b_join = c.join(join_request("", "b"), 0);
    answer(&mut c.join(join_request(&a, "a"), 0)).unwrap();
    let b = answer(&mut b_join).unwrap().member_id;
    c.apply_commit(GROUP, [(tp("t", 0), offset(42, 0))], 0);
    let other = JoinGroup { group_id: "other".into(), ..join_request("", "x") };
    let x = answer(&mut c.join(other, 0)).unwrap();

    // a rejoins and waits for b, whose join phase the timer completes.
    let mut a_rejoin = c.join(JoinGroup { protocols: protocols(&["range", "rr"]), ..join_request(&a, "a") }, 10);
    assert_waiting(&mut a_rejoin);
    c.groups.get_mut(GROUP).unwrap().leader_id = Some("ghost".into());
    c.tick(i64::from(REBALANCE_MS) + 10);

    assert_eq!(c.groups_reset(), 1);
    assert!(matches!(answer(&mut a_rejoin), Err(GroupError::UnknownMemberId { .. })), "the member rejoins afresh");
    assert!(matches!(c.heartbeat(heartbeat(2, &b), 40_000), Err(GroupError::UnknownMemberId { .. })));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    assert_eq!(c.fetch_offsets(GROUP, None), [(tp("t", 0), offset(42, 0))], "committed offsets are kept");
    assert_eq!(c.group_state("other"), Some(GroupState::Empty), "{} never synced: the timer removed it", x.member_id);
    assert_eq!(c.broken_invariants(), []);

    // The reset group serves new joins, in a generation past the one it fenced.
    let again = answer(&mut c.join(join_request("", "a"), 40_100)).unwrap();
    assert_eq!(again.generation_id, 4);
    assert_eq!(c.group_state(GROUP), Some(GroupState::CompletingRebalance));
}

#[test]
fn generations_start_again_at_one_past_i32_max() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    c.groups.get_mut(GROUP).unwrap().generation_id = i32::MAX;
    let rejoined = answer(&mut c.join(JoinGroup { protocols: protocols(&["rr"]), ..join_request(&a, "a") }, 10));
    assert_eq!(rejoined.unwrap().generation_id, 1);
    assert_eq!(c.groups_reset(), 0);
}
