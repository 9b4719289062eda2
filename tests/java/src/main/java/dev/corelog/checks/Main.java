package dev.corelog.checks;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The Java client (kafka-clients) against a broker, one JVM for many checks.
 *
 * <pre>java dev.corelog.checks.Main BOOTSTRAP [CHECK...]</pre>
 *
 * Prints one JSON line per check on stdout: {"check", "ok", "ms", "facts",
 * "error"}. A check that fails or runs past {@link #CHECK_TIMEOUT_S} is
 * reported and the next one runs; the exit status is 0 whenever every
 * requested check was reported, so the caller decides per check.
 */
public final class Main {
    /** One check's bound: the slowest (static membership) takes about 10 s. */
    static final long CHECK_TIMEOUT_S = 60;

    interface Check {
        void run(Env env, Facts facts) throws Exception;
    }

    static final Map<String, Check> CHECKS = new LinkedHashMap<>();

    static {
        CHECKS.put("idempotent_producer", ProducerChecks::idempotentProducer);
        CHECKS.put("codecs", ProducerChecks::codecs);
        CHECKS.put("keyed_partitioning", ProducerChecks::keyedPartitioning);
        CHECKS.put("transactions_refused", ProducerChecks::transactionsRefused);
        CHECKS.put("seek_and_timestamps", ConsumerChecks::seekAndTimestamps);
        CHECKS.put("static_membership", StaticMembershipCheck::run);
        CHECKS.put("consumer_protocol", ConsumerChecks::consumerGroupProtocol);
        CHECKS.put("admin_cluster", AdminChecks::describeClusterAndTopics);
        CHECKS.put("admin_offsets", AdminChecks::listOffsetsAndDeleteRecords);
        CHECKS.put("admin_configs", AdminChecks::incrementalAlterConfigs);
        CHECKS.put("admin_group_offsets", AdminChecks::groupOffsets);
    }

    private Main() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Main BOOTSTRAP [CHECK...]; checks: " + CHECKS.keySet());
            System.exit(2);
        }
        List<String> names = args.length > 1 ? List.of(args).subList(1, args.length) : new ArrayList<>(CHECKS.keySet());
        for (String name : names) {
            if (!CHECKS.containsKey(name)) {
                System.err.println("unknown check " + name + "; checks: " + CHECKS.keySet());
                System.exit(2);
            }
        }
        // Daemon threads: a check that hangs past its bound must not keep the JVM alive.
        ExecutorService runner = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "check");
            t.setDaemon(true);
            return t;
        });
        try (Env env = new Env(args[0])) {
            for (String name : names) {
                System.out.println(Json.write(runOne(runner, env, name)));
                System.out.flush();
            }
        }
        System.exit(0);
    }

    private static Map<String, Object> runOne(ExecutorService runner, Env env, String name) {
        Facts facts = new Facts();
        long start = System.nanoTime();
        String error = null;
        Future<?> running = runner.submit(() -> {
            CHECKS.get(name).run(env, facts);
            return null;
        });
        try {
            running.get(CHECK_TIMEOUT_S, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            error = describe(e.getCause());
        } catch (TimeoutException e) {
            running.cancel(true);
            error = "timed out after " + CHECK_TIMEOUT_S + " s";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            error = "interrupted";
        }
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("check", name);
        line.put("ok", error == null);
        line.put("ms", (System.nanoTime() - start) / 1_000_000);
        line.put("facts", facts.values);
        line.put("error", error);
        return line;
    }

    private static String describe(Throwable t) {
        if (t instanceof Facts.CheckFailed) return t.getMessage();
        StringWriter trace = new StringWriter();
        t.printStackTrace(new PrintWriter(trace));
        return trace.toString();
    }
}
