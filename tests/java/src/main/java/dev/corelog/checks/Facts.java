package dev.corelog.checks;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * What a check found, reported as data (so the pytest side can assert on it
 * too), and the assertions that fail the check with the values that differ.
 */
final class Facts {
    final Map<String, Object> values = new LinkedHashMap<>();

    /** Records a fact and returns it, so a check can report what it compares. */
    <T> T put(String name, T value) {
        values.put(name, value);
        return value;
    }

    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    static void expect(boolean condition, String what) {
        if (!condition) throw new CheckFailed(what);
    }

    static void expectEqual(String what, Object expected, Object actual) {
        if (!Objects.equals(expected, actual)) {
            throw new CheckFailed(what + ": expected " + expected + ", got " + actual);
        }
    }
}
