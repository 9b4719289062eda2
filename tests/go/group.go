package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type memberResult struct {
	// Records are the [partition, offset] pairs this member consumed, in order.
	Records [][2]int64 `json:"records"`
	// Assigned and Revoked are the partitions of each rebalance callback.
	Assigned     [][]int32 `json:"assigned"`
	Revoked      [][]int32 `json:"revoked"`
	CommitErrors []string  `json:"commit_errors"`
	FetchErrors  []string  `json:"fetch_errors"`
	// MemberID and Generation are the member's when it stopped consuming.
	MemberID   string `json:"member_id"`
	Generation int32  `json:"generation"`
}

type groupResult struct {
	Members []*memberResult `json:"members"`
	// Described, Listed and Coordinator are kadm's view of the group while
	// every member was still in it, after they stopped consuming.
	Described   describedGroupJSON `json:"described"`
	Listed      []listedGroupJSON  `json:"listed"`
	Coordinator int32              `json:"coordinator"`
	TimedOut    bool               `json:"timed_out"`
	Committed   map[int32]int64    `json:"committed"`
	Lag         map[int32]lagJSON  `json:"lag"`
}

type lagJSON struct {
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member"` // the member the partition is assigned to; "" in an Empty group
	Err       string `json:"err"`
}

// runGroup runs members of one consumer group (kgo.ConsumerGroup, franz-go's
// default cooperative-sticky balancer), each in its own client, until they
// have consumed stop-after records together. Each member commits what a poll
// returned before it lets a rebalance go on (BlockRebalanceOnPoll with
// CommitRecords), so that what is committed is exactly what was consumed.
func runGroup(args []string) (any, error) {
	var c common
	fs := flag.NewFlagSet("group", flag.ContinueOnError)
	c.register(fs)
	topic := fs.String("topic", "", "topic to consume")
	group := fs.String("group", "", "group id")
	members := fs.Int("members", 2, "members, each its own client")
	stopAfter := fs.Int64("stop-after", 0, "stop once the members consumed this many records together")
	pollRecords := fs.Int("poll-records", 50, "most records one poll returns")
	pollDelay := fs.Duration("poll-delay", 10*time.Millisecond, "time spent 'processing' each poll")
	instancePrefix := fs.String("instance-prefix", "", "static membership (KIP-345): member i is instance <prefix>i")
	serverSide := fs.Bool("server-side-balancer", false, "ask for KIP-848 groups (the broker assigns; franz-go falls back to the classic protocol where the broker does not serve it)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	ctx, cancel := c.context()
	defer cancel()
	consuming, stop := context.WithCancel(ctx)
	defer stop()

	var consumed atomic.Int64
	var stopped, released sync.WaitGroup
	release := make(chan struct{})
	out := groupResult{}
	for i := range *members {
		m := &memberResult{Records: [][2]int64{}, Assigned: [][]int32{}, Revoked: [][]int32{},
			CommitErrors: []string{}, FetchErrors: []string{}}
		out.Members = append(out.Members, m)
		var mu sync.Mutex // the callbacks run on the client's goroutines
		note := func(list *[][]int32) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				*list = append(*list, append([]int32{}, ps[*topic]...))
			}
		}
		opts := append(c.options(),
			kgo.ConsumerGroup(*group),
			kgo.ConsumeTopics(*topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(note(&m.Assigned)),
			kgo.OnPartitionsRevoked(note(&m.Revoked)),
		)
		if *instancePrefix != "" {
			opts = append(opts, kgo.InstanceID(fmt.Sprintf("%s%d", *instancePrefix, i)))
		}
		if *serverSide {
			opts = append(opts, kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		stopped.Add(1)
		released.Add(1)
		go func() {
			defer released.Done()
			defer cl.Close() // leaves the group, unless the member is static
			defer func() { <-release }()
			defer stopped.Done()
			defer func() { m.MemberID, m.Generation = cl.GroupMetadata() }()
			for consuming.Err() == nil {
				fetches := cl.PollRecords(consuming, *pollRecords)
				fetches.EachError(func(t string, p int32, err error) {
					if !errors.Is(err, context.Canceled) {
						m.FetchErrors = append(m.FetchErrors, fmt.Sprintf("%s[%d]: %v", t, p, err))
					}
				})
				records := fetches.Records()
				for _, r := range records {
					m.Records = append(m.Records, [2]int64{int64(r.Partition), r.Offset})
				}
				if len(records) > 0 {
					time.Sleep(*pollDelay)
					// Committed with the whole run's context: a stop asked for
					// meanwhile must not lose what was consumed.
					if err := cl.CommitRecords(ctx, records...); err != nil {
						m.CommitErrors = append(m.CommitErrors, err.Error())
					}
					if consumed.Add(int64(len(records))) >= *stopAfter {
						stop()
					}
				}
				cl.AllowRebalance()
				if len(m.FetchErrors) >= errorsMax {
					return
				}
			}
		}()
	}
	stopped.Wait()
	out.TimedOut = ctx.Err() != nil
	err := describeGroup(ctx, &c, *group, *topic, &out)
	close(release)
	released.Wait()
	return out, err
}

// describeGroup fills in what kadm says about the group and its offsets.
func describeGroup(ctx context.Context, c *common, group, topic string, out *groupResult) error {
	cl, err := kgo.NewClient(c.options()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("DescribeGroups: %w", err)
	}
	out.Described = describedJSON(described[group])
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("ListGroups: %w", err)
	}
	out.Listed = listedJSON(listed)
	coordinator := adm.FindGroupCoordinators(ctx, group)[group]
	if coordinator.Err != nil {
		return fmt.Errorf("FindCoordinator: %w", coordinator.Err)
	}
	out.Coordinator = coordinator.NodeID
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("FetchOffsets: %w", err)
	}
	out.Committed = map[int32]int64{}
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out.Committed[o.Partition] = o.At
		}
	})
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return fmt.Errorf("Lag: %w", err)
	}
	groupLag := lags[group]
	if err := groupLag.Error(); err != nil {
		return fmt.Errorf("Lag: %w", err)
	}
	out.Lag = map[int32]lagJSON{}
	for _, l := range groupLag.Lag[topic] {
		member := ""
		if l.Member != nil {
			member = l.Member.MemberID
		}
		out.Lag[l.Partition] = lagJSON{Committed: l.Commit.At, End: l.End.Offset, Lag: l.Lag,
			Member: member, Err: errText(l.Err)}
	}
	return nil
}
