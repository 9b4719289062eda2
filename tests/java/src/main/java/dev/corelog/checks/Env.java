package dev.corelog.checks;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The broker under test and the client settings every check starts from. */
final class Env implements AutoCloseable {
    /** How long one admin call, or reading back what a check wrote, may take. */
    static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    static final Duration POLL_INTERVAL = Duration.ofMillis(100);
    /** After the expected records arrived: how long to wait for records that should not exist. */
    static final Duration NOTHING_MORE_WAIT = Duration.ofMillis(300);

    final String bootstrap;
    final Admin admin;

    Env(String bootstrap) {
        this.bootstrap = bootstrap;
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        this.admin = Admin.create(props);
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** Creates a topic through the AdminClient (replication factor 1, as on one node). */
    String createTopic(String prefix, int partitions, Map<String, String> configs) throws Exception {
        String name = unique(prefix);
        NewTopic topic = new NewTopic(name, partitions, (short) 1).configs(configs);
        admin.createTopics(List.of(topic)).all().get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        return name;
    }

    String createTopic(String prefix, int partitions) throws Exception {
        return createTopic(prefix, partitions, Map.of());
    }

    /** Only the bootstrap servers: every other producer setting is the Java client's default. */
    Properties producerProps() {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return props;
    }

    Properties consumerProps(String groupId) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return props;
    }

    static StringSerializer strings() {
        return new StringSerializer();
    }

    KafkaConsumer<String, String> consumer(Properties props) {
        return new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
    }

    /**
     * Reads exactly {@code count} records of each partition from {@code from}
     * (assign, no group), and checks nothing follows them.
     */
    Map<TopicPartition, List<ConsumerRecord<String, String>>> readExactly(
            Map<TopicPartition, Long> from, Map<TopicPartition, Integer> count) {
        Map<TopicPartition, List<ConsumerRecord<String, String>>> got = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = consumer(consumerProps(unique("reader")))) {
            consumer.assign(from.keySet());
            from.forEach(consumer::seek);
            from.keySet().forEach(tp -> got.put(tp, new ArrayList<>()));
            long deadline = System.nanoTime() + CALL_TIMEOUT.toNanos();
            while (!count.entrySet().stream().allMatch(e -> got.get(e.getKey()).size() >= e.getValue())) {
                Facts.expect(System.nanoTime() < deadline, "reading back: timed out with " + sizes(got)
                        + " records, expected " + count);
                consumer.poll(POLL_INTERVAL).forEach(r -> got.get(new TopicPartition(r.topic(), r.partition())).add(r));
            }
            consumer.poll(NOTHING_MORE_WAIT).forEach(r -> got.get(new TopicPartition(r.topic(), r.partition())).add(r));
            Facts.expectEqual("records read back per partition", count, sizes(got));
        }
        return got;
    }

    static Map<TopicPartition, Integer> sizes(Map<TopicPartition, ? extends List<?>> lists) {
        Map<TopicPartition, Integer> sizes = new HashMap<>();
        lists.forEach((tp, list) -> sizes.put(tp, list.size()));
        return sizes;
    }

    @Override
    public void close() {
        admin.close(Duration.ofSeconds(5));
    }
}
