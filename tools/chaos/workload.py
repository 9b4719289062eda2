"""The workload a chaos run drives through its faults, all with
confluent-kafka (librdkafka), each client on a thread of its own, every
send, acknowledgement, read and commit written to the history:

- producers: idempotent, acks=all, each value "<producer>:<seq>" unique in
  the run, spread over every partition of every topic by sequence;
- consumers: one group subscribed to every topic, committing synchronously;
- samplers: ListOffsets latest (the high watermark) and the group's
  committed offsets (OffsetFetch), per partition, over time.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

# librdkafka: nothing below critical (every refused connection of a killed node is an error line).
QUIET = {"log_level": 2}
# A record may wait this long for its acknowledgement: longer than the
# slowest fault (a whole-cluster crash and restart) so that a failure in the
# history means the cluster could not take it, not that the fault outlasted us.
MESSAGE_TIMEOUT_MS = 120_000
# How often a consumer commits what it has read, and how often the samplers look.
COMMIT_INTERVAL_S = 1.0
SAMPLE_INTERVAL_S = 0.5


class Worker(threading.Thread):
    def __init__(self, name: str, history, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.history, self.stopping = history, stop
        self.errors: list[str] = []

    def run(self):
        try:
            self.work()
        except Exception as e:  # noqa: BLE001 (a dead worker is reported, never silent)
            self.errors.append(f"{self.name}: {e!r}")
            self.history.add("worker_error", worker=self.name, error=repr(e))


class ProducerWorker(Worker):
    """Sends at `rate` records a second; a fatal error (the idempotent
    producer cannot go on, e.g. OUT_OF_ORDER_SEQUENCE_NUMBER) is recorded and
    a new incarnation takes over the slot, as an application would."""

    def __init__(self, slot: int, bootstrap: str, partitions: list[tuple[str, int]], rate: float, history, stop,
                 client_log: Path | None = None):
        super().__init__(f"p{slot}", history, stop)
        self.slot, self.bootstrap, self.partitions, self.rate = slot, bootstrap, partitions, rate
        self.incarnation = 0
        self.client_log = client_log

    def _client(self) -> Producer:
        config = {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": MESSAGE_TIMEOUT_MS, **QUIET, "error_cb": self._on_error}
        if self.client_log is not None:
            # librdkafka's idempotence log (epoch bumps, sequence resets, what
            # it infers from each produce error), for a run's post-mortem.
            logger = logging.getLogger(f"librdkafka.{self.name}")
            if not logger.handlers:
                handler = logging.FileHandler(self.client_log)
                handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
                logger.addHandler(handler)
            logger.setLevel(logging.DEBUG)
            config.update({"debug": "eos,msg", "log_level": 7, "logger": logger})
        return Producer(config)

    def _on_error(self, err: KafkaError):
        if err.fatal():
            self.fatal = err

    def work(self):
        while not self.stopping.is_set():
            self.fatal = None
            name = f"p{self.slot}.{self.incarnation}"
            producer = self._client()
            self._send_until_fatal(producer, name)
            producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 10)
            if self.fatal is not None:
                self.history.add("producer_fatal", producer=name, error=str(self.fatal))
                self.incarnation += 1

    def _send_until_fatal(self, producer: Producer, name: str):
        seq, start = 0, time.monotonic()
        while not self.stopping.is_set() and self.fatal is None:
            topic, partition = self.partitions[seq % len(self.partitions)]
            value = f"{name}:{seq}"
            self.history.add("send", producer=name, seq=seq, topic=topic, partition=partition, value=value)

            def report(err, msg, seq=seq, topic=topic, partition=partition):
                if err is None:
                    self.history.add("ack", producer=name, seq=seq, topic=topic, partition=partition,
                                     offset=msg.offset())
                else:
                    self.history.add("fail", producer=name, seq=seq, topic=topic, partition=partition,
                                     error=str(err))

            while True:
                try:
                    producer.produce(topic, value=value.encode(), partition=partition, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
            seq += 1
            producer.poll(0)
            ahead = seq / self.rate - (time.monotonic() - start)
            if ahead > 0:
                producer.poll(ahead)


class ConsumerWorker(Worker):
    def __init__(self, index: int, bootstrap: str, group: str, topics: list[str], history, stop):
        super().__init__(f"c{index}", history, stop)
        self.bootstrap, self.group, self.topics = bootstrap, group, topics

    def work(self):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                             "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
        consumer.subscribe(self.topics)
        last_commit = time.monotonic()
        try:
            while not self.stopping.is_set():
                for m in consumer.consume(500, timeout=0.5):
                    if m.error() is None:
                        self.history.add("read", consumer=self.name, topic=m.topic(), partition=m.partition(),
                                         offset=m.offset(), value=m.value().decode())
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    last_commit = time.monotonic()
                    self._commit(consumer)
            self._commit(consumer)
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer):
        try:
            done = consumer.commit(asynchronous=False)
        except KafkaException as e:
            # Nothing to commit, a rebalance in progress, the coordinator moving: not accepted.
            self.history.add("commit_error", consumer=self.name, error=str(e.args[0]))
            return
        for tp in done or []:
            if tp.error is None and tp.offset >= 0:
                self.history.add("commit", consumer=self.name, topic=tp.topic, partition=tp.partition,
                                 offset=tp.offset)


class WatermarkSampler(Worker):
    """ListOffsets latest per partition: what a consumer may read up to."""

    def __init__(self, bootstrap: str, partitions: list[tuple[str, int]], history, stop):
        super().__init__("hw-sampler", history, stop)
        self.bootstrap, self.partitions = bootstrap, partitions

    def work(self):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "chaos-hw-sampler", **QUIET})
        try:
            while not self.stopping.wait(SAMPLE_INTERVAL_S):
                for topic, partition in self.partitions:
                    try:
                        _, hw = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=2)
                    except KafkaException:
                        continue  # leader down or moving: no sample
                    self.history.add("hw", topic=topic, partition=partition, hw=hw)
        finally:
            consumer.close()


class CommittedSampler(Worker):
    """The group's committed offsets (OffsetFetch to its coordinator), without joining the group."""

    def __init__(self, bootstrap: str, group: str, partitions: list[tuple[str, int]], history, stop):
        super().__init__("committed-sampler", history, stop)
        self.bootstrap, self.group, self.partitions = bootstrap, group, partitions

    def work(self):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group, **QUIET})
        try:
            while not self.stopping.wait(SAMPLE_INTERVAL_S * 2):
                # A commit accepted while this OffsetFetch was in flight may or may not be in its answer.
                asked = self.history.now()
                try:
                    got = consumer.committed([TopicPartition(t, p) for t, p in self.partitions], timeout=3)
                except KafkaException:
                    continue  # coordinator down or moving
                for tp in got:
                    if tp.error is None and tp.offset >= 0:
                        self.history.add("committed", topic=tp.topic, partition=tp.partition, offset=tp.offset,
                                         asked=asked)
        finally:
            consumer.close()
