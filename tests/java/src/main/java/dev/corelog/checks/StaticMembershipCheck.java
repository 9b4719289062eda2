package dev.corelog.checks;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Future;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Two static members (group.instance.id) with the cooperative-sticky
 * assignor share a topic. Each in turn is closed (a static member does not
 * leave the group on close) and restarted with the same instance id within
 * session.timeout.ms: the group does not rebalance (the other member's
 * listener sees nothing, the generation stays), the restarted member gets its
 * old partitions back and continues at its committed offsets. Every record is
 * consumed exactly once over all members' lives (commits follow every poll).
 */
final class StaticMembershipCheck {
    static final int PARTITIONS = 4;
    /** Records per partition written before the members start, then before each restart. */
    static final int RECORDS_PER_ROUND = 30;
    /** Far above a restart's few hundred ms, so the member's session outlives its absence. */
    static final Duration SESSION_TIMEOUT = Duration.ofSeconds(30);
    static final Duration WAIT = Duration.ofSeconds(60);

    private StaticMembershipCheck() {}

    /** One consumer's life: its thread polls, records, commits after every poll. */
    static final class Member implements ConsumerRebalanceListener {
        final String instanceId;
        final KafkaConsumer<String, String> consumer;
        final ConcurrentLinkedQueue<ConsumerRecord<String, String>> consumed = new ConcurrentLinkedQueue<>();
        final List<String> events = Collections.synchronizedList(new ArrayList<>());
        volatile Set<Integer> assignment = Set.of();
        volatile int generation = -1;
        volatile Throwable failure;
        volatile boolean stopping;
        final Thread thread;

        Member(Env env, String topic, String group, String instanceId) {
            this.instanceId = instanceId;
            Properties props = env.consumerProps(group);
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, Long.toString(SESSION_TIMEOUT.toMillis()));
            props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
            consumer = env.consumer(props);
            thread = new Thread(() -> loop(topic), "member-" + instanceId);
            thread.setDaemon(true);
            thread.start();
        }

        private void loop(String topic) {
            try {
                consumer.subscribe(List.of(topic), this);
                while (!stopping) {
                    var records = consumer.poll(Env.POLL_INTERVAL);
                    records.forEach(consumed::add);
                    if (!records.isEmpty()) consumer.commitSync();
                    generation = consumer.groupMetadata().generationId();
                    Set<Integer> now = new TreeSet<>();
                    consumer.assignment().forEach(tp -> now.add(tp.partition()));
                    assignment = now;
                }
            } catch (Throwable t) {
                failure = t;
            } finally {
                consumer.close();
            }
        }

        void close() throws InterruptedException {
            stopping = true;
            thread.join(WAIT.toMillis());
            Facts.expect(!thread.isAlive(), instanceId + " did not close");
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) events.add("revoked " + numbers(partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            events.add("assigned " + numbers(partitions));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            events.add("lost " + numbers(partitions));
        }

        private static Set<Integer> numbers(Collection<TopicPartition> partitions) {
            Set<Integer> out = new TreeSet<>();
            partitions.forEach(tp -> out.add(tp.partition()));
            return out;
        }

        void checkAlive() {
            if (failure != null) throw new Facts.CheckFailed(instanceId + " failed: " + failure);
        }
    }

    static void run(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-static", PARTITIONS));
        String group = facts.put("group", Env.unique("java-static"));
        List<Member> lives = new ArrayList<>();
        int firstRound = produceRound(env, topic, 0);
        int produced = firstRound;

        Member a = new Member(env, topic, group, "member-a");
        Member b = new Member(env, topic, group, "member-b");
        lives.add(a);
        lives.add(b);
        waitFor("both members share the topic and consumed round 0", lives, () -> {
            Set<Integer> all = new HashSet<>(a.assignment);
            all.addAll(b.assignment);
            return a.generation > 0 && a.generation == b.generation && !a.assignment.isEmpty()
                    && !b.assignment.isEmpty() && all.size() == PARTITIONS
                    && a.assignment.size() + b.assignment.size() == PARTITIONS
                    && consumedCount(lives) == firstRound;
        });
        int generation = facts.put("generation", a.generation);
        Map<String, Object> restarts = new LinkedHashMap<>();
        facts.put("restarts", restarts);

        // Restart a, then b: whichever leads the group, both paths are taken.
        Member[] current = {a, b};
        for (int round = 1; round <= 2; round++) {
            Member leaving = current[round - 1];
            Member other = current[2 - round];
            Set<Integer> partitions = leaving.assignment;
            int otherEventsBefore = other.events.size();
            Map<Integer, Long> committed = committedOffsets(env, group, topic, partitions);
            leaving.close();
            produced += produceRound(env, topic, round);
            Member back = new Member(env, topic, group, leaving.instanceId);
            lives.add(back);
            int total = produced;
            waitFor(back.instanceId + " back and everything consumed", lives,
                    () -> !back.assignment.isEmpty() && consumedCount(lives) == total);

            Map<String, Object> restart = new LinkedHashMap<>();
            restarts.put(leaving.instanceId, restart);
            restart.put("partitions_before", partitions);
            restart.put("partitions_after", back.assignment);
            restart.put("generation_after", back.generation);
            restart.put("other_generation_after", other.generation);
            synchronized (other.events) {
                restart.put("other_events_during_restart",
                        new ArrayList<>(other.events.subList(otherEventsBefore, other.events.size())));
            }
            synchronized (back.events) {
                restart.put("restarted_events", new ArrayList<>(back.events));
            }
            Map<Integer, Long> resumedAt = firstOffsets(back);
            restart.put("committed_at_close", committed);
            restart.put("first_offset_after_restart", resumedAt);

            Facts.expectEqual(back.instanceId + " gets its partitions back", partitions, back.assignment);
            Facts.expectEqual(back.instanceId + " generation after restart", generation, back.generation);
            Facts.expectEqual("the other member's generation", generation, other.generation);
            Facts.expectEqual("the other member's rebalance callbacks during the restart", List.of(),
                    restart.get("other_events_during_restart"));
            Facts.expectEqual(back.instanceId + " resumes at its committed offsets", committed, resumedAt);
            current[round - 1] = back;
        }

        // Every record of every round, consumed exactly once by some member life.
        Map<String, Integer> seen = new TreeMap<>();
        for (Member m : lives) m.consumed.forEach(r -> seen.merge(r.partition() + "@" + r.offset(), 1, Integer::sum));
        List<String> twice = seen.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey).toList();
        facts.put("produced", produced);
        facts.put("consumed_distinct", seen.size());
        facts.put("consumed_twice", twice);
        Facts.expectEqual("records consumed more than once", List.of(), twice);
        Facts.expectEqual("distinct records consumed", produced, seen.size());
        for (Member m : current) m.close();
        for (Member m : lives) m.checkAlive();
    }

    /** Writes RECORDS_PER_ROUND records to every partition; returns how many. */
    private static int produceRound(Env env, String topic, int round) throws Exception {
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(env.producerProps(), Env.strings(),
                Env.strings())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                for (int i = 0; i < RECORDS_PER_ROUND; i++) {
                    sent.add(producer.send(new ProducerRecord<>(topic, p, "r" + round, "round-" + round + "-" + i)));
                }
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) f.get();
            return sent.size();
        }
    }

    private static int consumedCount(List<Member> lives) {
        return lives.stream().mapToInt(m -> m.consumed.size()).sum();
    }

    private static Map<Integer, Long> committedOffsets(Env env, String group, String topic, Set<Integer> partitions)
            throws Exception {
        Map<TopicPartition, OffsetAndMetadata> all =
                env.admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        Map<Integer, Long> out = new TreeMap<>();
        for (int p : partitions) {
            OffsetAndMetadata o = all.get(new TopicPartition(topic, p));
            out.put(p, o == null ? null : o.offset());
        }
        return out;
    }

    private static Map<Integer, Long> firstOffsets(Member m) {
        Map<Integer, Long> first = new TreeMap<>();
        for (ConsumerRecord<String, String> r : m.consumed) first.merge(r.partition(), r.offset(), Math::min);
        return first;
    }

    private static void waitFor(String what, List<Member> lives, BooleanSupplier done) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!done.getAsBoolean()) {
            lives.forEach(Member::checkAlive);
            if (System.nanoTime() > deadline) {
                Map<String, Object> state = new HashMap<>();
                for (Member m : lives) {
                    state.put(m.instanceId + "#" + lives.indexOf(m), Map.of("assignment", m.assignment,
                            "generation", m.generation, "consumed", m.consumed.size(), "events", m.events));
                }
                throw new Facts.CheckFailed("timed out waiting until " + what + ": " + state);
            }
            Thread.sleep(50);
        }
    }
}
