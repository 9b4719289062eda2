//! The "how" section of peer.md: how each broker (and each node of a
//! cluster) was run, the CPUs, the replication, the load and the rounds.

use serde_json::Value;

use crate::kafka;
use crate::peer::PeerArgs;
use crate::peer_report::PeerResults;
use crate::{perf, shell_quote};

/// The "how" of peer.md: both brokers' settings, the CPUs, the load, the rounds.
pub fn method(args: &PeerArgs, r: &PeerResults) -> String {
    let b = &r.brokers;
    let n = args.nodes;
    let corelog_how = if n == 1 {
        format!(
            "`corelog serve --shards 1{}`",
            args.broker_arg.iter().map(|a| format!(" {}", shell_quote(a))).collect::<String>()
        )
    } else {
        let node1 = b["corelog"]["node_args"][0].as_array().map_or(String::new(), |a| {
            a.iter().filter_map(Value::as_str).map(shell_quote).collect::<Vec<_>>().join(" ")
        });
        format!("{n} nodes on 127.0.0.1..{n}, each as node 1: `corelog {node1}` (on ports of each start's own)")
    };
    let mut s = format!(
        "- **corelog:** {} (`{}`), {corelog_how} (its defaults: O_DIRECT segment writes with a \
         hot tail in memory, no fsync per acknowledgement)\n",
        b["corelog"]["version"].as_str().unwrap_or("?"),
        b["corelog"]["binary"].as_str().unwrap_or("?"),
    );
    if let Some(k) = b["kafka"].as_object() {
        let nodes = if n == 1 {
            "one KRaft node (broker and controller in one process)".to_string()
        } else {
            format!(
                "{n} KRaft nodes on 127.0.0.1..{n}, each broker and controller in one process, formatted \
                 with the same cluster id"
            )
        };
        s += &format!(
            "- **Apache Kafka:** {} from Maven Central, {nodes}, \
             {}, `java {} {}` (the heap and JVM flags of bin/kafka-server-start.sh), log4j at WARN; Kafka's \
             defaults otherwise, its flush policy included (no log.flush.* setting: acknowledged writes are in \
             the page cache). server.properties{} (each start on ports of its own):\n\n```properties\n{}```\n",
            k["version"].as_str().unwrap_or("?"),
            k["java"].as_str().unwrap_or("?"),
            kafka::server_jvm_args().join(" "),
            kafka::SERVER_CLASS,
            if n == 1 { "" } else { " of node 1" },
            k["server_properties"].as_str().unwrap_or("")
        );
    }
    s += &format!(
        "- **CPUs:** each broker under `taskset -c {}` (every node of a cluster on the same CPUs), corelog-load \
         and ProducerPerformance under `taskset -c {}`: the broker's every thread (Kafka's network, I/O, GC \
         and JIT threads; corelog's shard and io_uring workers) on its CPU(s), the client on the other(s); \
         CPU and RSS figures are the sums over a cluster's nodes\n",
        args.broker_cpus, args.load_cpus
    );
    if n > 1 {
        let rf = args.replication_factor();
        s += &format!(
            "- **Replication:** every case's topic is created with replication factor {rf} (and 1 in the \
             `-rf1` cases) and min.insync.replicas {} (1 at RF 1); corelog-load produces with acks=all. \
             Failover: open loop at {} msgs/s of 100 B records to one partition, batches closed every 20 ms; {} s after the warm-up the \
             node leading it (found through Metadata) is SIGKILLed; the gap is read from corelog-load's \
             timeline of acknowledgements: from the old leader's last to a new leader's first (corelog-load \
             follows the leader change as a Kafka client does: metadata refresh on NOT_LEADER_OR_FOLLOWER or a \
             lost connection, every 100 ms at most), with the errors seen in between\n",
            crate::peer_cases::MIN_INSYNC_REPLICAS.min(rf),
            args.failover_rate,
            args.failover_after
        );
    }
    s += &format!(
        "- **Load:** corelog-load (the same binary and flags for both), {} s measured after {} s warm-up, {}, \
         64 KiB batches, 5 requests in flight per connection; consume cases first write {} MB and read them \
         from the beginning with one consumer; fixed-rate cases (one producer, one consumer) run open loop at {}% \
         of the lower of both brokers' maxima in the first round, after as many seconds of closed-loop load as \
         the warm-up lasts (a cold JVM would carry its backlog into the measured window); broker CPU per \
         million messages is taken over the measured window; ProducerPerformance: {} records ({} warm-up), acks={}, the Java producer's other defaults\n",
        args.duration,
        args.warmup,
        if n == 1 { "acks=1" } else { "acks=all" },
        args.consume_mb,
        args.latency_pct,
        args.perf_records,
        args.perf_records / perf::WARMUP_FRACTION,
        args.perf_acks
    );
    s += &format!(
        "- **Rounds:** {}, interleaved: every case runs on a fresh broker of each kind in turn ({} first in even \
         rounds, last in odd ones), each on a fresh data directory `{}` (the same disk for both)\n",
        args.rounds,
        args.brokers.first().map(|b| b.name()).unwrap_or("?"),
        r.options["data_dir"].as_str().map(str::to_string).unwrap_or_else(|| args
            .out
            .join("broker-data")
            .display()
            .to_string())
    );
    s
}
