// Command franzgo drives a Kafka-compatible broker with franz-go (kgo, kadm)
// for tests/test_franz_go.py. Each subcommand does one thing a Go service
// does with the client and prints one JSON document on stdout, so that the
// Python test asserts on data (offsets, keys, values, headers, committed
// offsets) rather than on this program's opinion. Errors the client reports
// per record or per partition are printed as strings in that document; an
// error that stops the subcommand exits 1 with the reason on stderr.
//
//	franzgo produce --brokers B --topic T --codec zstd --mode async --n 1000
//	franzgo consume --brokers B --topic T
//	franzgo group   --brokers B --topic T --group G --members 2 --stop-after 500
//	franzgo admin   --brokers B <operation> [arguments]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: franzgo produce|consume|group|admin [flags]"))
	}
	commands := map[string]func([]string) (any, error){
		"produce": runProduce,
		"consume": runConsume,
		"group":   runGroup,
		"admin":   runAdmin,
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
	out, err := run(os.Args[2:])
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "franzgo:", err)
	os.Exit(1)
}

// common holds the flags every subcommand takes.
type common struct {
	brokers string
	timeout time.Duration
	verbose bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "bootstrap servers, comma-separated")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this long")
	fs.BoolVar(&c.verbose, "verbose", false, "log the client's info messages to stderr")
}

// options are the client options every subcommand starts from: the client's
// defaults (idempotent producer, acks=all) with its warnings on stderr.
func (c *common) options() []kgo.Opt {
	level := kgo.LogLevelWarn
	if c.verbose {
		level = kgo.LogLevelInfo
	}
	return []kgo.Opt{
		kgo.SeedBrokers(strings.Split(c.brokers, ",")...),
		kgo.ClientID("franzgo-check"),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)),
	}
}

func (c *common) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

// recordJSON is one record as the tests compare it. Keys, values and header
// values are the ASCII text this program produces; a nil key or value is null.
type recordJSON struct {
	Partition   int32       `json:"partition"`
	Offset      int64       `json:"offset"`
	Key         *string     `json:"key"`
	Value       *string     `json:"value"`
	Headers     [][2]string `json:"headers"`
	TimestampMs int64       `json:"timestamp_ms"`
	ProducerID  int64       `json:"producer_id"`
	// LeaderEpoch is the partition leader epoch of the record's batch, which
	// the broker stamps on append (KIP-101) and consumers commit (KIP-320).
	LeaderEpoch int32 `json:"leader_epoch"`
	// Codec is the compression of the batch a consumed record came in
	// (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd); absent for produced ones.
	Codec *uint8 `json:"codec,omitempty"`
}

func toJSON(r *kgo.Record) recordJSON {
	headers := make([][2]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		headers = append(headers, [2]string{h.Key, string(h.Value)})
	}
	return recordJSON{
		Partition:   r.Partition,
		Offset:      r.Offset,
		Key:         text(r.Key),
		Value:       text(r.Value),
		Headers:     headers,
		TimestampMs: r.Timestamp.UnixMilli(),
		ProducerID:  r.ProducerID,
		LeaderEpoch: r.LeaderEpoch,
	}
}

func text(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
