package main

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// codecs are the compressions franz-go produces, by Kafka's names.
var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

type produceResult struct {
	Records []recordJSON `json:"records"`
	// Errors holds one entry per record that failed, in produce order.
	Errors []string `json:"errors"`
}

// runProduce produces n records with the client's defaults (idempotent,
// acks=all): "sync" awaits each record before the next (ProduceSync),
// "async" hands all to Produce and awaits them with Flush, so several
// requests per broker are in flight (five with idempotence), at a given
// rate if asked.
func runProduce(args []string) (any, error) {
	var c common
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	c.register(fs)
	topic := fs.String("topic", "", "topic to produce to")
	n := fs.Int("n", 1000, "records to produce")
	codec := fs.String("codec", "none", "none, gzip, snappy, lz4 or zstd")
	mode := fs.String("mode", "async", "sync or async")
	prefix := fs.String("prefix", "v", "value prefix, so that runs into one topic differ")
	partitions := fs.Int("partitions", 0, "0: the default (murmur2 of the key) partitioner; P: record i goes to partition i % P")
	linger := fs.Duration("linger", 0, "producer linger")
	rate := fs.Int("rate", 0, "async: hand the client at most this many records per second (0: as fast as it takes them)")
	transactionalID := fs.String("transactional-id", "", "produce in one transaction (BeginTransaction, EndTransaction commit)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	compression, ok := codecs[*codec]
	if !ok {
		return nil, fmt.Errorf("unknown codec %q", *codec)
	}
	opts := append(c.options(),
		kgo.DefaultProduceTopic(*topic),
		kgo.ProducerBatchCompression(compression),
		kgo.ProducerLinger(*linger),
	)
	if *partitions > 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if *transactionalID != "" {
		opts = append(opts, kgo.TransactionalID(*transactionalID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := c.context()
	defer cancel()

	records := make([]*kgo.Record, *n)
	for i := range records {
		records[i] = testRecord(*prefix, i)
		if *partitions > 0 {
			records[i].Partition = int32(i % *partitions)
		}
	}
	errs := make([]error, *n)
	if *transactionalID != "" {
		if err := cl.BeginTransaction(); err != nil {
			return produceResult{Records: []recordJSON{}, Errors: []string{"BeginTransaction: " + err.Error()}}, nil
		}
	}
	switch *mode {
	case "sync":
		for i, r := range records {
			errs[i] = cl.ProduceSync(ctx, r).FirstErr()
		}
	case "async":
		var wg sync.WaitGroup
		wg.Add(len(records))
		started := time.Now()
		for i, r := range records {
			if *rate > 0 {
				time.Sleep(time.Until(started.Add(time.Duration(i) * time.Second / time.Duration(*rate))))
			}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				errs[i] = err
				wg.Done()
			})
		}
		wg.Wait()
	default:
		return nil, fmt.Errorf("unknown mode %q", *mode)
	}

	out := produceResult{Records: make([]recordJSON, 0, *n), Errors: []string{}}
	if *transactionalID != "" {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("EndTransaction: %v", err))
		}
	}
	for i, r := range records {
		out.Records = append(out.Records, toJSON(r))
		if errs[i] != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("record %d: %v", i, errs[i]))
		}
	}
	return out, nil
}

// testRecord is record i of a run: every shape a record can take on the
// wire, so that a broker that rewrites or misreads one shows up.
func testRecord(prefix string, i int) *kgo.Record {
	r := &kgo.Record{}
	if i%10 != 0 {
		r.Key = fmt.Appendf(nil, "key-%d", i%37) // many records per key; none every tenth
	}
	if i%50 != 49 {
		r.Value = fmt.Appendf(nil, "%s-%06d|%s", prefix, i, strings.Repeat("x", (i*13)%200))
	}
	switch i % 3 {
	case 1:
		r.Headers = []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)}}
	case 2:
		r.Headers = []kgo.RecordHeader{
			{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)},
			{Key: "trace", Value: []byte("repeated key")},
			{Key: "empty", Value: []byte{}},
		}
	}
	return r
}
