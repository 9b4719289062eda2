package dev.corelog.checks;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/** The consumer outside groups (seek, offsetsForTimes), and KIP-848's group protocol. */
final class ConsumerChecks {
    static final int TIMED_RECORDS = 100;
    /** Record i is stamped base + i * step. */
    static final long TIMESTAMP_STEP_MS = 1000;
    /** How long group.protocol=consumer may take to fail against a broker without KIP-848. */
    static final Duration CONSUMER_PROTOCOL_BOUND = Duration.ofSeconds(30);

    private ConsumerChecks() {}

    /**
     * Records stamped explicitly, 1 s apart (10 minutes ago, inside
     * message.timestamp.before.max.ms): seek, seekToBeginning, seekToEnd and
     * offsetsForTimes land on the offsets the timestamps say.
     */
    static void seekAndTimestamps(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-seek", 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = System.currentTimeMillis() - 600_000;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(env.producerProps(), Env.strings(),
                Env.strings())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < TIMED_RECORDS; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, 0, base + i * TIMESTAMP_STEP_MS, "k" + i, "v" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) f.get();
        }
        try (KafkaConsumer<String, String> consumer = env.consumer(env.consumerProps(Env.unique("seek")))) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, 50);
            Facts.expectEqual("first record after seek(50)", 50L, facts.put("after_seek_50", firstOffset(consumer)));
            consumer.seekToBeginning(List.of(tp));
            Facts.expectEqual("position after seekToBeginning", 0L,
                    facts.put("position_after_seek_to_beginning", consumer.position(tp)));
            Facts.expectEqual("first record after seekToBeginning", 0L,
                    facts.put("after_seek_to_beginning", firstOffset(consumer)));
            consumer.seekToEnd(List.of(tp));
            Facts.expectEqual("position after seekToEnd", (long) TIMED_RECORDS,
                    facts.put("position_after_seek_to_end", consumer.position(tp)));

            // Exactly a record's timestamp finds it; between two finds the later one.
            Map<String, Object> times = new LinkedHashMap<>();
            facts.put("offsets_for_times", times);
            long[][] cases = {{25, 0, 25}, {25, 500, 26}, {0, -5_000, 0}, {99, 0, 99}};
            for (long[] c : cases) {
                long ts = base + c[0] * TIMESTAMP_STEP_MS + c[1];
                OffsetAndTimestamp found = consumer.offsetsForTimes(Map.of(tp, ts)).get(tp);
                Facts.expect(found != null, "offsetsForTimes(" + ts + ") found nothing");
                times.put("base+" + (ts - base), found.offset());
                Facts.expectEqual("offsetsForTimes(base+" + (ts - base) + ")", c[2], found.offset());
                Facts.expectEqual("timestamp of the record found", base + c[2] * TIMESTAMP_STEP_MS, found.timestamp());
                consumer.seek(tp, found.offset());
                ConsumerRecord<String, String> r = first(consumer);
                Facts.expectEqual("record at the offset found", "v" + c[2], r.value());
            }
            // After the newest record: nothing.
            long after = base + TIMED_RECORDS * TIMESTAMP_STEP_MS;
            OffsetAndTimestamp none = consumer.offsetsForTimes(Map.of(tp, after)).get(tp);
            times.put("after_last", none == null ? null : none.offset());
            Facts.expect(none == null, "offsetsForTimes after the last record found " + none);
            Facts.expectEqual("beginningOffsets", 0L, consumer.beginningOffsets(List.of(tp)).get(tp));
            Facts.expectEqual("endOffsets", (long) TIMED_RECORDS, consumer.endOffsets(List.of(tp)).get(tp));
        }
    }

    private static ConsumerRecord<String, String> first(KafkaConsumer<String, String> consumer) {
        long deadline = System.nanoTime() + Env.CALL_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            var records = consumer.poll(Env.POLL_INTERVAL);
            if (!records.isEmpty()) return records.iterator().next();
        }
        throw new Facts.CheckFailed("no record within " + Env.CALL_TIMEOUT);
    }

    private static long firstOffset(KafkaConsumer<String, String> consumer) {
        return first(consumer).offset();
    }

    /**
     * group.protocol=consumer (KIP-848) needs ConsumerGroupHeartbeat, which
     * corelog does not serve: the consumer must fail with a clear error, soon.
     */
    static void consumerGroupProtocol(Env env, Facts facts) throws Exception {
        String topic = env.createTopic("java-kip848", 1);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env.bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, Env.unique("kip848"));
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        long start = System.nanoTime();
        Throwable error = null;
        try (KafkaConsumer<String, String> consumer = env.consumer(props)) {
            consumer.subscribe(List.of(topic));
            while (System.nanoTime() - start < CONSUMER_PROTOCOL_BOUND.toNanos()) {
                consumer.poll(Env.POLL_INTERVAL);
            }
        } catch (Exception e) {
            error = e;
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        facts.put("ms_to_error", ms);
        Facts.expect(error != null, "group.protocol=consumer: no error within " + CONSUMER_PROTOCOL_BOUND);
        facts.put("error_class", error.getClass().getName());
        facts.put("error_message", error.getMessage());
        Map<String, Object> cause = new HashMap<>();
        if (error.getCause() != null) cause.put(error.getCause().getClass().getName(), error.getCause().getMessage());
        facts.put("cause", cause);
    }
}
