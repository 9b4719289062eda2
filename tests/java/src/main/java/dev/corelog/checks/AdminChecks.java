package dev.corelog.checks;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;

/** The AdminClient calls a Kafka operator uses most. */
final class AdminChecks {
    static final int RECORDS_PER_PARTITION = 10;
    static final long TIMESTAMP_STEP_MS = 1000;

    private AdminChecks() {}

    /** describeCluster (nodes, controller) and describeTopics by name and by id (leaders, replicas, isr). */
    static void describeClusterAndTopics(Env env, Facts facts) throws Exception {
        DescribeClusterResult cluster = env.admin.describeCluster();
        Collection<Node> nodes = cluster.nodes().get();
        Node controller = cluster.controller().get();
        facts.put("cluster_id", cluster.clusterId().get());
        List<Map<String, Object>> nodeFacts = new ArrayList<>();
        Set<Integer> nodeIds = new TreeSet<>();
        for (Node n : nodes) {
            nodeFacts.add(Map.of("id", n.id(), "host", n.host(), "port", n.port()));
            nodeIds.add(n.id());
        }
        facts.put("nodes", nodeFacts);
        facts.put("controller", controller == null ? null : controller.id());
        Facts.expect(!nodes.isEmpty(), "describeCluster found no nodes");
        Facts.expect(controller != null && nodeIds.contains(controller.id()),
                "the controller " + controller + " is one of the nodes " + nodeIds);

        String topic = facts.put("topic", env.createTopic("java-describe", 3));
        TopicDescription description = env.admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        List<Map<String, Object>> partitions = new ArrayList<>();
        for (TopicPartitionInfo p : description.partitions()) {
            Facts.expect(p.leader() != null, "partition " + p.partition() + " has a leader");
            Facts.expect(nodeIds.contains(p.leader().id()), "leader " + p.leader() + " is a node");
            Facts.expectEqual("replicas of partition " + p.partition(), List.of(p.leader()), p.replicas());
            Facts.expectEqual("isr of partition " + p.partition(), List.of(p.leader()), p.isr());
            partitions.add(Map.of("partition", p.partition(), "leader", p.leader().id(),
                    "replicas", ids(p.replicas()), "isr", ids(p.isr())));
        }
        facts.put("partitions", partitions);
        Facts.expectEqual("partitions described", 3, partitions.size());
        Facts.expect(!description.isInternal(), "a new topic is not internal");

        // By id, as the Java AdminClient sends it (name "", not null).
        TopicDescription byId = env.admin.describeTopics(TopicCollection.ofTopicIds(List.of(description.topicId())))
                .allTopicIds().get().get(description.topicId());
        facts.put("described_by_id", byId.name());
        Facts.expectEqual("the topic described by its id", topic, byId.name());
        Facts.expectEqual("partitions described by id", description.partitions(), byId.partitions());

        String missing = Env.unique("java-missing");
        facts.put("describe_missing_topic", errorOf(() -> env.admin.describeTopics(List.of(missing)).allTopicNames().get()));
    }

    private static List<Integer> ids(List<Node> nodes) {
        return nodes.stream().map(Node::id).toList();
    }

    /**
     * listOffsets (earliest, latest, by timestamp) and deleteRecords, after
     * which the earliest offset and a consumer's beginning move.
     */
    static void listOffsetsAndDeleteRecords(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-offsets", 2));
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        long base = System.currentTimeMillis() - 600_000;
        produceTimed(env, topic, 2, base);

        Facts.expectEqual("earliest", Map.of(p0, 0L, p1, 0L), facts.put("earliest", offsets(env, OffsetSpec.earliest(), p0, p1)));
        Facts.expectEqual("latest", Map.of(p0, 10L, p1, 10L), facts.put("latest", offsets(env, OffsetSpec.latest(), p0, p1)));
        long ts = base + 4 * TIMESTAMP_STEP_MS + 500;
        Facts.expectEqual("offset for timestamp base+4500", Map.of(p0, 5L, p1, 5L),
                facts.put("for_timestamp_base_plus_4500", offsets(env, OffsetSpec.forTimestamp(ts), p0, p1)));
        long after = base + RECORDS_PER_PARTITION * TIMESTAMP_STEP_MS;
        Facts.expectEqual("offset for a timestamp after every record", Map.of(p0, -1L, p1, -1L),
                facts.put("for_timestamp_after_last", offsets(env, OffsetSpec.forTimestamp(after), p0, p1)));

        long low = env.admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(p0).get()
                .lowWatermark();
        Facts.expectEqual("low watermark after deleteRecords(4)", 4L, facts.put("delete_before_4_low_watermark", low));
        Facts.expectEqual("earliest after deleteRecords", Map.of(p0, 4L, p1, 0L),
                facts.put("earliest_after_delete", offsets(env, OffsetSpec.earliest(), p0, p1)));
        Facts.expectEqual("latest after deleteRecords", Map.of(p0, 10L, p1, 10L),
                facts.put("latest_after_delete", offsets(env, OffsetSpec.latest(), p0, p1)));
        try (KafkaConsumer<String, String> consumer = env.consumer(env.consumerProps(Env.unique("after-delete")))) {
            consumer.assign(List.of(p0));
            consumer.seekToBeginning(List.of(p0));
            List<ConsumerRecord<String, String>> read = new ArrayList<>();
            long deadline = System.nanoTime() + Env.CALL_TIMEOUT.toNanos();
            while (read.size() < RECORDS_PER_PARTITION - 4 && System.nanoTime() < deadline) {
                consumer.poll(Env.POLL_INTERVAL).forEach(read::add);
            }
            List<Long> readOffsets = read.stream().map(ConsumerRecord::offset).toList();
            facts.put("consumed_after_delete", readOffsets);
            Facts.expectEqual("offsets a consumer reads from the beginning after deleteRecords",
                    List.of(4L, 5L, 6L, 7L, 8L, 9L), readOffsets);
        }
        // Past the high watermark: OFFSET_OUT_OF_RANGE, as Kafka answers.
        facts.put("delete_past_end", errorOf(() -> env.admin.deleteRecords(Map.of(p1,
                RecordsToDelete.beforeOffset(RECORDS_PER_PARTITION + 1))).all().get()));
        Facts.expectEqual("deleteRecords past the end", "OffsetOutOfRangeException", facts.values.get("delete_past_end"));
        // -1 means "up to the high watermark".
        long all = env.admin.deleteRecords(Map.of(p1, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(p1).get()
                .lowWatermark();
        Facts.expectEqual("low watermark after deleteRecords(-1)", 10L, facts.put("delete_all_low_watermark", all));
    }

    private static void produceTimed(Env env, String topic, int partitions, long base) throws Exception {
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(env.producerProps(), Env.strings(),
                Env.strings())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                for (int i = 0; i < RECORDS_PER_PARTITION; i++) {
                    sent.add(producer.send(new ProducerRecord<>(topic, p, base + i * TIMESTAMP_STEP_MS, "k" + i, "v" + i)));
                }
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) f.get();
        }
    }

    private static Map<TopicPartition, Long> offsets(Env env, OffsetSpec spec, TopicPartition... partitions)
            throws Exception {
        Map<TopicPartition, OffsetSpec> request = new HashMap<>();
        for (TopicPartition tp : partitions) request.put(tp, spec);
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> got = env.admin.listOffsets(request).all().get();
        Map<TopicPartition, Long> out = new HashMap<>();
        got.forEach((tp, info) -> out.put(tp, info.offset()));
        return out;
    }

    /**
     * incrementalAlterConfigs SET / APPEND / DELETE / SUBTRACT on a topic,
     * each seen by describeConfigs with its source; validateOnly changes
     * nothing; a bad value is INVALID_CONFIG.
     */
    static void incrementalAlterConfigs(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-configs", 1));
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        alter(env, resource, false,
                new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND));
        Map<String, List<String>> afterSet = facts.put("after_set",
                describe(env, resource, "retention.ms", "max.message.bytes", "cleanup.policy"));
        Facts.expectEqual("retention.ms after SET", List.of("3600000", "DYNAMIC_TOPIC_CONFIG"), afterSet.get("retention.ms"));
        Facts.expectEqual("max.message.bytes after SET", List.of("2000000", "DYNAMIC_TOPIC_CONFIG"),
                afterSet.get("max.message.bytes"));
        Facts.expectEqual("cleanup.policy after APPEND", List.of("delete,compact", "DYNAMIC_TOPIC_CONFIG"),
                afterSet.get("cleanup.policy"));

        alter(env, resource, false,
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT));
        Map<String, List<String>> afterDelete = facts.put("after_delete",
                describe(env, resource, "retention.ms", "max.message.bytes", "cleanup.policy"));
        Facts.expectEqual("retention.ms after DELETE", List.of("604800000", "DEFAULT_CONFIG"),
                afterDelete.get("retention.ms"));
        Facts.expectEqual("max.message.bytes untouched", List.of("2000000", "DYNAMIC_TOPIC_CONFIG"),
                afterDelete.get("max.message.bytes"));
        Facts.expectEqual("cleanup.policy after SUBTRACT", List.of("delete", "DYNAMIC_TOPIC_CONFIG"),
                afterDelete.get("cleanup.policy"));

        alter(env, resource, true,
                new AlterConfigOp(new ConfigEntry("segment.ms", "60000"), AlterConfigOp.OpType.SET));
        Map<String, List<String>> afterValidate = facts.put("after_validate_only", describe(env, resource, "segment.ms"));
        Facts.expectEqual("segment.ms after a validateOnly SET", List.of("604800000", "DEFAULT_CONFIG"),
                afterValidate.get("segment.ms"));

        facts.put("bad_value", errorOf(() -> alter(env, resource, false,
                new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET))));
        Facts.expectEqual("SET retention.ms=soon", "InvalidConfigurationException", facts.values.get("bad_value"));
    }

    private static void alter(Env env, ConfigResource resource, boolean validateOnly, AlterConfigOp... ops)
            throws Exception {
        env.admin.incrementalAlterConfigs(Map.of(resource, List.of(ops)),
                new AlterConfigsOptions().validateOnly(validateOnly)).all().get();
    }

    /** name -> [value, source] of the named configs. */
    private static Map<String, List<String>> describe(Env env, ConfigResource resource, String... names)
            throws Exception {
        Config config = env.admin.describeConfigs(List.of(resource)).all().get().get(resource);
        Map<String, List<String>> out = new TreeMap<>();
        for (String name : names) {
            ConfigEntry entry = config.get(name);
            Facts.expect(entry != null, "describeConfigs shows " + name);
            out.put(name, List.of(String.valueOf(entry.value()), entry.source().name()));
        }
        return out;
    }

    /**
     * listConsumerGroupOffsets shows a group's commits (with metadata);
     * alterConsumerGroupOffsets of an empty group moves them and a consumer
     * joining the group starts there; of an active group it is refused.
     */
    static void groupOffsets(Env env, Facts facts) throws Exception {
        String topic = facts.put("topic", env.createTopic("java-group-offsets", 2));
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        produceTimed(env, topic, 2, System.currentTimeMillis());
        String group = facts.put("group", Env.unique("java-offsets"));
        try (KafkaConsumer<String, String> consumer = env.consumer(env.consumerProps(group))) {
            consumer.assign(List.of(p0, p1));
            consumer.commitSync(Map.of(p0, new OffsetAndMetadata(5, "meta-a"), p1, new OffsetAndMetadata(7)));
        }
        Map<String, List<Object>> listed = facts.put("listed", listGroupOffsets(env, group));
        Facts.expectEqual("committed offsets listed", Map.of("0", List.of(5L, "meta-a"), "1", List.of(7L, "")), listed);

        env.admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(2), p1, new OffsetAndMetadata(9)))
                .all().get();
        Map<String, List<Object>> altered = facts.put("after_alter", listGroupOffsets(env, group));
        Facts.expectEqual("offsets after alterConsumerGroupOffsets", Map.of("0", List.of(2L, ""), "1", List.of(9L, "")),
                altered);

        try (KafkaConsumer<String, String> consumer = env.consumer(env.consumerProps(group))) {
            consumer.subscribe(List.of(topic));
            Map<Integer, Long> first = new TreeMap<>();
            long deadline = System.nanoTime() + Env.CALL_TIMEOUT.toNanos();
            while (first.size() < 2 && System.nanoTime() < deadline) {
                consumer.poll(Env.POLL_INTERVAL).forEach(r -> first.putIfAbsent(r.partition(), r.offset()));
            }
            facts.put("group_consumer_starts_at", first);
            Facts.expectEqual("where a group member starts", Map.of(0, 2L, 1, 9L), first);

            ConsumerGroupDescription described = env.admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            Set<Integer> assigned = new TreeSet<>();
            for (MemberDescription m : described.members()) {
                m.assignment().topicPartitions().forEach(tp -> assigned.add(tp.partition()));
            }
            facts.put("described", Map.of("state", described.groupState().name(), "members",
                    described.members().size(), "assigned", assigned, "assignor", described.partitionAssignor()));
            Facts.expectEqual("group state while a member consumes", "STABLE", described.groupState().name());
            Facts.expectEqual("partitions assigned to the member", Set.of(0, 1), assigned);

            // Kafka refuses an admin commit to a group with live members.
            facts.put("alter_active_group", errorOf(() -> env.admin.alterConsumerGroupOffsets(group,
                    Map.of(p0, new OffsetAndMetadata(0))).all().get()));
            Facts.expectEqual("alterConsumerGroupOffsets of an active group", "UnknownMemberIdException",
                    facts.values.get("alter_active_group"));
        }
        String state = env.admin.describeConsumerGroups(List.of(group)).all().get().get(group).groupState().name();
        Facts.expectEqual("group state after its member left", "EMPTY", facts.put("state_after_close", state));
    }

    private static Map<String, List<Object>> listGroupOffsets(Env env, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> got =
                env.admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        Map<String, List<Object>> out = new TreeMap<>();
        got.forEach((tp, o) -> out.put(Integer.toString(tp.partition()), List.of(o.offset(), o.metadata())));
        return out;
    }

    interface Call {
        void run() throws Exception;
    }

    /** The simple class name of the exception a call ends with (its cause, for futures), or null. */
    static String errorOf(Call call) {
        try {
            call.run();
            return null;
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        } catch (Exception e) {
            return e.getClass().getSimpleName();
        }
    }

}
