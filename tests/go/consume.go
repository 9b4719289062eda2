package main

import (
	"flag"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errorsMax is how many fetch errors a command collects before it gives up:
// a broker that keeps failing a partition should fail the test quickly.
const errorsMax = 100

type consumeResult struct {
	// StartOffsets and EndOffsets are ListOffsets' answers before reading.
	StartOffsets map[int32]int64 `json:"start_offsets"`
	EndOffsets   map[int32]int64 `json:"end_offsets"`
	Records      []recordJSON    `json:"records"`
	Errors       []string        `json:"errors"`
}

// runConsume reads every partition of a topic from its start offset to the
// end offset it had when the command began, without a group (assigned
// partitions, as a tool that dumps a topic does).
func runConsume(args []string) (any, error) {
	var c common
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	c.register(fs)
	topic := fs.String("topic", "", "topic to read")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	ctx, cancel := c.context()
	defer cancel()

	admin, err := kgo.NewClient(c.options()...)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	starts, err := adm.ListStartOffsets(ctx, *topic)
	if err != nil {
		return nil, fmt.Errorf("ListStartOffsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, *topic)
	if err != nil {
		return nil, fmt.Errorf("ListEndOffsets: %w", err)
	}
	out := consumeResult{
		StartOffsets: map[int32]int64{},
		EndOffsets:   map[int32]int64{},
		Records:      []recordJSON{},
		Errors:       []string{},
	}
	from := map[int32]kgo.Offset{}
	left := map[int32]int64{} // partition -> end offset not yet reached
	for p, s := range starts[*topic] {
		e := ends[*topic][p]
		if s.Err != nil || e.Err != nil {
			return nil, fmt.Errorf("partition %d: start %v, end %v", p, s.Err, e.Err)
		}
		out.StartOffsets[p], out.EndOffsets[p] = s.Offset, e.Offset
		if e.Offset > s.Offset {
			from[p] = kgo.NewOffset().At(s.Offset)
			left[p] = e.Offset
		}
	}

	cl, err := kgo.NewClient(append(c.options(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: from}))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("timed out with partitions %v not read to their end", left))
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			out.Errors = append(out.Errors, fmt.Sprintf("%s[%d]: %v", t, p, err))
		})
		if len(out.Errors) >= errorsMax {
			break
		}
		fetches.EachRecord(func(r *kgo.Record) {
			rec := toJSON(r)
			codec := r.Attrs.CompressionType()
			rec.Codec = &codec
			out.Records = append(out.Records, rec)
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return out, nil
}
