#!/usr/bin/env bash
# Resolves Apache Kafka's jars (tools, server, Java client) from Maven Central
# into ~/.m2, compiles the Java checks in src/, and writes
#   tests/java/target/classpath.txt   (the jars, ':'-separated, our classes first)
# Idempotent: a second run with nothing changed only checks timestamps.
set -euo pipefail
cd "$(dirname "$0")"
out=target/classpath.txt
if [ -f "$out" ] && [ -z "$(find pom.xml src -newer "$out" -print -quit)" ]; then
    exit 0
fi
mvn -q -B package -DskipTests
# our classes (and log4j2.properties) first, then Kafka's jars
printf '%s:%s' "$PWD/target/classes" "$(cat "$out")" > "$out.tmp"
mv "$out.tmp" "$out"
