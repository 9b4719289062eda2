package dev.corelog.checks;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.utils.Utils;

/** The producer: Java's defaults (idempotent, acks=all), every codec, the default partitioner. */
final class ProducerChecks {
    static final int IDEMPOTENT_RECORDS = 5000;
    static final int RECORDS_PER_CODEC = 400;
    static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static final int KEYED_PARTITIONS = 7;
    static final int KEYED_RECORDS = 700;

    private ProducerChecks() {}

    /**
     * No settings but the bootstrap servers: Kafka 3+ defaults to acks=all and
     * enable.idempotence=true. Every record is acknowledged at the next offset
     * and read back exactly once, in order.
     */
    static void idempotentProducer(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-idempotent", 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        Properties props = env.producerProps();
        List<RecordMetadata> acks = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props, Env.strings(), Env.strings())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < IDEMPOTENT_RECORDS; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, 0, "k" + i, "value-" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) acks.add(f.get());
        }
        facts.put("acked", acks.size());
        for (int i = 0; i < acks.size(); i++) {
            Facts.expectEqual("offset of acknowledged record " + i, (long) i, acks.get(i).offset());
        }
        List<ConsumerRecord<String, String>> read =
                env.readExactly(Map.of(tp, 0L), Map.of(tp, IDEMPOTENT_RECORDS)).get(tp);
        facts.put("read", read.size());
        for (int i = 0; i < read.size(); i++) {
            ConsumerRecord<String, String> r = read.get(i);
            Facts.expectEqual("offset of record " + i, (long) i, r.offset());
            Facts.expectEqual("key at offset " + i, "k" + i, r.key());
            Facts.expectEqual("value at offset " + i, "value-" + i, r.value());
        }
        facts.put("end_offset", env.admin.listOffsets(Map.of(tp, org.apache.kafka.clients.admin.OffsetSpec.latest()))
                .partitionResult(tp).get().offset());
    }

    /** How long a transactional producer may take to learn transactions are not served. */
    static final long TRANSACTIONS_REFUSED_BOUND_MS = 10_000;

    /**
     * corelog serves no transactions: initTransactions and the AdminClient's
     * fenceProducers must fail soon with a clear error, not retry until
     * max.block.ms (here above the bound, so that a retry loop shows).
     */
    static void transactionsRefused(Env env, Facts facts) throws Exception {
        Properties props = env.producerProps();
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, Env.unique("java-txn"));
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(2 * TRANSACTIONS_REFUSED_BOUND_MS));
        long start = System.nanoTime();
        Exception refused = null;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props, Env.strings(), Env.strings())) {
            producer.initTransactions();
        } catch (Exception e) {
            refused = e;
        }
        long ms = facts.put("init_transactions_ms", (System.nanoTime() - start) / 1_000_000);
        Facts.expect(refused != null, "initTransactions succeeded");
        facts.put("init_transactions_error", refused.getClass().getSimpleName() + ": " + refused.getMessage());
        Facts.expect(ms < TRANSACTIONS_REFUSED_BOUND_MS, "initTransactions failed only after " + ms + " ms: " + refused);
        Facts.expect(String.valueOf(refused.getMessage()).contains("transactions are not supported"),
                "initTransactions says why: " + refused);

        start = System.nanoTime();
        String fenced = AdminChecks.errorOf(() -> env.admin.fenceProducers(List.of(Env.unique("java-txn")),
                new org.apache.kafka.clients.admin.FenceProducersOptions().timeoutMs((int) (2 * TRANSACTIONS_REFUSED_BOUND_MS)))
                .all().get());
        ms = facts.put("fence_producers_ms", (System.nanoTime() - start) / 1_000_000);
        facts.put("fence_producers_error", fenced);
        Facts.expectEqual("fenceProducers", "UnsupportedVersionException", fenced);
        Facts.expect(ms < TRANSACTIONS_REFUSED_BOUND_MS, "fenceProducers failed only after " + ms + " ms");
    }

    /**
     * One producer per codec, each into its own partition (partition i for
     * CODECS[i]): keys, values, headers and timestamps come back as sent.
     */
    static void codecs(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-codecs", CODECS.size()));
        long baseTimestamp = System.currentTimeMillis() - 60_000;
        Map<String, Object> perCodec = new LinkedHashMap<>();
        facts.put("partition_of_codec", perCodec);
        Map<TopicPartition, Long> from = new HashMap<>();
        Map<TopicPartition, Integer> count = new HashMap<>();
        for (int p = 0; p < CODECS.size(); p++) {
            Properties props = env.producerProps();
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, CODECS.get(p));
            // Let batches fill, so that compressed batches hold many records.
            props.put(ProducerConfig.LINGER_MS_CONFIG, "50");
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(props, Env.strings(), Env.strings())) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = 0; i < RECORDS_PER_CODEC; i++) {
                    sent.add(producer.send(codecRecord(topic, p, i, baseTimestamp)));
                }
                producer.flush();
                for (int i = 0; i < sent.size(); i++) {
                    Facts.expectEqual(CODECS.get(p) + ": offset of record " + i, (long) i, sent.get(i).get().offset());
                }
            }
            perCodec.put(CODECS.get(p), p);
            TopicPartition tp = new TopicPartition(topic, p);
            from.put(tp, 0L);
            count.put(tp, RECORDS_PER_CODEC);
        }
        var read = env.readExactly(from, count);
        for (int p = 0; p < CODECS.size(); p++) {
            List<ConsumerRecord<String, String>> records = read.get(new TopicPartition(topic, p));
            for (int i = 0; i < records.size(); i++) {
                ConsumerRecord<String, String> got = records.get(i);
                ProducerRecord<String, String> sent = codecRecord(topic, p, i, baseTimestamp);
                String where = CODECS.get(p) + " record " + i;
                Facts.expectEqual(where + " offset", (long) i, got.offset());
                Facts.expectEqual(where + " key", sent.key(), got.key());
                Facts.expectEqual(where + " value", sent.value(), got.value());
                Facts.expectEqual(where + " timestamp", sent.timestamp(), got.timestamp());
                Facts.expectEqual(where + " header", new String(sent.headers().lastHeader("seq").value(),
                        StandardCharsets.UTF_8), new String(got.headers().lastHeader("seq").value(), StandardCharsets.UTF_8));
            }
        }
        facts.put("records_per_codec", RECORDS_PER_CODEC);
    }

    private static ProducerRecord<String, String> codecRecord(String topic, int partition, int i, long baseTimestamp) {
        // Repetitive values compress; the index keeps each one distinct.
        String value = "codec-" + CODECS.get(partition) + "-" + i + "-" + "abcdefgh".repeat(8);
        RecordHeaders headers = new RecordHeaders();
        headers.add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
        return new ProducerRecord<>(topic, partition, baseTimestamp + i, "key-" + i, value, headers);
    }

    /**
     * Keyed records with Java's default partitioner: each lands on
     * toPositive(murmur2(key)) % partitions, and is read back from there.
     */
    static void keyedPartitioning(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-keyed", KEYED_PARTITIONS));
        Map<String, Integer> expected = new LinkedHashMap<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(env.producerProps(), Env.strings(),
                Env.strings())) {
            for (int i = 0; i < KEYED_RECORDS; i++) {
                String key = "user-" + i;
                expected.put(key, Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % KEYED_PARTITIONS);
                sent.add(producer.send(new ProducerRecord<>(topic, key, "v" + i)));
            }
            producer.flush();
        }
        Map<TopicPartition, Integer> count = new HashMap<>();
        int i = 0;
        for (Map.Entry<String, Integer> e : expected.entrySet()) {
            RecordMetadata meta = sent.get(i++).get();
            Facts.expectEqual("partition the producer chose for " + e.getKey(), e.getValue(), meta.partition());
            count.merge(new TopicPartition(topic, meta.partition()), 1, Integer::sum);
        }
        Map<TopicPartition, Long> from = new HashMap<>();
        for (int p = 0; p < KEYED_PARTITIONS; p++) {
            TopicPartition tp = new TopicPartition(topic, p);
            from.put(tp, 0L);
            count.putIfAbsent(tp, 0);
        }
        Map<String, Integer> found = new TreeMap<>();
        env.readExactly(from, count).forEach((tp, records) -> records.forEach(r -> found.put(r.key(), tp.partition())));
        Facts.expectEqual("partition each key was read from", new TreeMap<>(expected), found);
        Map<Integer, Integer> perPartition = new TreeMap<>();
        count.forEach((tp, n) -> perPartition.put(tp.partition(), n));
        facts.put("records_per_partition", perPartition);
        // A sample, for cross-checking other partitioners against Java's.
        Map<String, Integer> sample = new LinkedHashMap<>();
        expected.entrySet().stream().limit(20).forEach(e -> sample.put(e.getKey(), found.get(e.getKey())));
        facts.put("partition_of_key", sample);
    }
}
