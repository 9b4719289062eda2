package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// adminOps are kadm's calls, one per operation name; each gets the
// operation's arguments and returns what the broker answered.
var adminOps = map[string]func(context.Context, *kadm.Client, []string) (any, error){
	"create-topics":          createTopics,
	"delete-topics":          deleteTopics,
	"metadata":               metadata,
	"list-topics":            listTopics,
	"describe-topic-configs": describeTopicConfigs,
	"alter-topic-configs":    alterTopicConfigs,
	"list-offsets":           listOffsets,
	"delete-records":         deleteRecords,
	"list-groups":            listGroups,
	"describe-groups":        describeGroups,
	"fetch-offsets":          fetchOffsets,
	"commit-offsets":         commitOffsets,
}

// runAdmin runs one kadm call: admin [flags] <operation> [arguments].
func runAdmin(args []string) (any, error) {
	var c common
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() == 0 {
		return nil, fmt.Errorf("admin: no operation given")
	}
	op, ok := adminOps[fs.Arg(0)]
	if !ok {
		return nil, fmt.Errorf("admin: unknown operation %q", fs.Arg(0))
	}
	cl, err := kgo.NewClient(c.options()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := c.context()
	defer cancel()
	return op(ctx, kadm.NewClient(cl), fs.Args()[1:])
}

// createTopics: [--partitions P] [--config k=v]... topic...
func createTopics(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	fs := flag.NewFlagSet("create-topics", flag.ContinueOnError)
	partitions := fs.Int("partitions", 1, "partitions of each topic")
	var configs keyValues
	fs.Var(&configs, "config", "topic config key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]*string{}
	for _, kv := range configs {
		set[kv[0]] = &kv[1]
	}
	created, err := adm.CreateTopics(ctx, int32(*partitions), 1, set, fs.Args()...)
	if err != nil {
		return nil, err
	}
	type result struct {
		Err               string            `json:"err"`
		NumPartitions     int32             `json:"num_partitions"`
		ReplicationFactor int16             `json:"replication_factor"`
		ID                string            `json:"id"`
		Configs           map[string]string `json:"configs"`
	}
	out := map[string]result{}
	for name, t := range created {
		cfg := map[string]string{}
		for k, v := range t.Configs {
			if v.Value != nil {
				cfg[k] = *v.Value
			}
		}
		out[name] = result{errText(t.Err), t.NumPartitions, t.ReplicationFactor, t.ID.String(), cfg}
	}
	return out, nil
}

// deleteTopics: topic...
func deleteTopics(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	deleted, err := adm.DeleteTopics(ctx, args...)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, t := range deleted {
		out[name] = errText(t.Err)
	}
	return out, nil
}

type partitionJSON struct {
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Err         string  `json:"err"`
}

type topicJSON struct {
	ID         string                  `json:"id"`
	Internal   bool                    `json:"internal"`
	Partitions map[int32]partitionJSON `json:"partitions"`
	Err        string                  `json:"err"`
}

func topicsJSON(details kadm.TopicDetails) map[string]topicJSON {
	out := map[string]topicJSON{}
	for name, t := range details {
		parts := map[int32]partitionJSON{}
		for p, d := range t.Partitions {
			parts[p] = partitionJSON{d.Leader, d.LeaderEpoch, d.Replicas, d.ISR, errText(d.Err)}
		}
		out[name] = topicJSON{t.ID.String(), t.IsInternal, parts, errText(t.Err)}
	}
	return out
}

// metadata: topic... (none: every topic)
func metadata(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	m, err := adm.Metadata(ctx, args...)
	if err != nil {
		return nil, err
	}
	type broker struct {
		NodeID int32  `json:"node_id"`
		Host   string `json:"host"`
		Port   int32  `json:"port"`
	}
	brokers := []broker{}
	for _, b := range m.Brokers {
		brokers = append(brokers, broker{b.NodeID, b.Host, b.Port})
	}
	return map[string]any{
		"cluster":    m.Cluster,
		"controller": m.Controller,
		"brokers":    brokers,
		"topics":     topicsJSON(m.Topics),
	}, nil
}

// listTopics: [--internal]: every topic, without or with the internal ones.
func listTopics(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	list := adm.ListTopics
	if len(args) == 1 && args[0] == "--internal" {
		list = adm.ListTopicsWithInternal
	}
	details, err := list(ctx)
	if err != nil {
		return nil, err
	}
	return topicsJSON(details), nil
}

// describeTopicConfigs: topic...
func describeTopicConfigs(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	described, err := adm.DescribeTopicConfigs(ctx, args...)
	if err != nil {
		return nil, err
	}
	type config struct {
		Value  *string `json:"value"`
		Source string  `json:"source"`
	}
	type resource struct {
		Configs map[string]config `json:"configs"`
		Err     string            `json:"err"`
	}
	out := map[string]resource{}
	for _, r := range described {
		cfg := map[string]config{}
		for _, c := range r.Configs {
			cfg[c.Key] = config{c.Value, c.Source.String()}
		}
		out[r.Name] = resource{cfg, errText(r.Err)}
	}
	return out, nil
}

// alterTopicConfigs: topic set:key=value | delete:key | append:key=value | subtract:key=value ...
// (IncrementalAlterConfigs)
func alterTopicConfigs(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("alter-topic-configs: topic and at least one change")
	}
	ops := map[string]kadm.IncrementalOp{
		"set": kadm.SetConfig, "delete": kadm.DeleteConfig,
		"append": kadm.AppendConfig, "subtract": kadm.SubtractConfig,
	}
	var changes []kadm.AlterConfig
	for _, arg := range args[1:] {
		opName, kv, _ := strings.Cut(arg, ":")
		op, ok := ops[opName]
		if !ok {
			return nil, fmt.Errorf("alter-topic-configs: unknown change %q", arg)
		}
		key, value, hasValue := strings.Cut(kv, "=")
		change := kadm.AlterConfig{Op: op, Name: key}
		if hasValue {
			change.Value = &value
		}
		changes = append(changes, change)
	}
	altered, err := adm.AlterTopicConfigs(ctx, changes, args[0])
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range altered {
		out[r.Name] = errText(r.Err)
	}
	return out, nil
}

type listedOffsetJSON struct {
	Offset      int64  `json:"offset"`
	Timestamp   int64  `json:"timestamp"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Err         string `json:"err"`
}

// listOffsets: topic: start, end and (with --after-ms T) the first offset at
// or after T (ListOffsets earliest, latest, and by time).
func listOffsets(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	fs := flag.NewFlagSet("list-offsets", flag.ContinueOnError)
	afterMs := fs.Int64("after-ms", -1, "also list the first offset at or after this time (ms since the epoch)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	topic := fs.Arg(0)
	lists := map[string]func() (kadm.ListedOffsets, error){
		"start": func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, topic) },
		"end":   func() (kadm.ListedOffsets, error) { return adm.ListEndOffsets(ctx, topic) },
	}
	if *afterMs >= 0 {
		lists["after"] = func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, *afterMs, topic) }
	}
	out := map[string]map[int32]listedOffsetJSON{}
	for name, list := range lists {
		listed, err := list()
		if err != nil {
			return nil, fmt.Errorf("%s offsets: %w", name, err)
		}
		out[name] = map[int32]listedOffsetJSON{}
		for p, o := range listed[topic] {
			out[name][p] = listedOffsetJSON{o.Offset, o.Timestamp, o.LeaderEpoch, errText(o.Err)}
		}
	}
	return out, nil
}

// deleteRecords: topic partition=offset...
func deleteRecords(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	offsets, err := parseOffsets(args)
	if err != nil {
		return nil, err
	}
	deleted, err := adm.DeleteRecords(ctx, offsets)
	if err != nil {
		return nil, err
	}
	type result struct {
		LowWatermark int64  `json:"low_watermark"`
		Err          string `json:"err"`
	}
	out := map[int32]result{}
	for _, ps := range deleted {
		for p, r := range ps {
			out[p] = result{r.LowWatermark, errText(r.Err)}
		}
	}
	return out, nil
}

type listedGroupJSON struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	GroupType    string `json:"group_type"`
	Coordinator  int32  `json:"coordinator"`
}

func listedJSON(listed kadm.ListedGroups) []listedGroupJSON {
	out := []listedGroupJSON{}
	for _, g := range listed.Sorted() {
		out = append(out, listedGroupJSON{g.Group, g.State, g.ProtocolType, g.GroupType, g.Coordinator})
	}
	return out
}

// listGroups: every group of every broker (ListGroups is sent to each).
func listGroups(ctx context.Context, adm *kadm.Client, _ []string) (any, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	return listedJSON(listed), nil
}

type memberJSON struct {
	MemberID   string             `json:"member_id"`
	InstanceID *string            `json:"instance_id"`
	ClientID   string             `json:"client_id"`
	ClientHost string             `json:"client_host"`
	Assigned   map[string][]int32 `json:"assigned"`
}

type describedGroupJSON struct {
	State        string       `json:"state"`
	ProtocolType string       `json:"protocol_type"`
	Protocol     string       `json:"protocol"`
	Coordinator  int32        `json:"coordinator"`
	Members      []memberJSON `json:"members"`
	Err          string       `json:"err"`
}

func describedJSON(g kadm.DescribedGroup) describedGroupJSON {
	out := describedGroupJSON{g.State, g.ProtocolType, g.Protocol, g.Coordinator.NodeID, []memberJSON{}, errText(g.Err)}
	for _, m := range g.Members {
		assigned := map[string][]int32{}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				assigned[t.Topic] = t.Partitions
			}
		}
		out.Members = append(out.Members, memberJSON{m.MemberID, m.InstanceID, m.ClientID, m.ClientHost, assigned})
	}
	return out
}

// describeGroups: group...
func describeGroups(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	described, err := adm.DescribeGroups(ctx, args...)
	if err != nil {
		return nil, err
	}
	out := map[string]describedGroupJSON{}
	for name, g := range described {
		out[name] = describedJSON(g)
	}
	return out, nil
}

type committedJSON struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
	Err         string `json:"err"`
}

func offsetsJSON(offsets kadm.OffsetResponses) map[string]map[int32]committedJSON {
	out := map[string]map[int32]committedJSON{}
	offsets.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]committedJSON{}
		}
		out[o.Topic][o.Partition] = committedJSON{o.At, o.LeaderEpoch, o.Metadata, errText(o.Err)}
	})
	return out
}

// fetchOffsets: group
func fetchOffsets(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("fetch-offsets: one group")
	}
	fetched, err := adm.FetchOffsets(ctx, args[0])
	if err != nil {
		return nil, err
	}
	return offsetsJSON(fetched), nil
}

// commitMetadata is the metadata string of an admin commit, to be read back.
const commitMetadata = "committed by franzgo admin"

// commitOffsets: group topic partition=offset... (as an admin, outside any
// generation: the group must have no members)
func commitOffsets(ctx context.Context, adm *kadm.Client, args []string) (any, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("commit-offsets: group, topic and offsets")
	}
	offsets, err := parseOffsets(args[1:])
	if err != nil {
		return nil, err
	}
	for _, ps := range offsets {
		for p, o := range ps {
			o.Metadata = commitMetadata
			ps[p] = o
		}
	}
	committed, err := adm.CommitOffsets(ctx, args[0], offsets)
	if err != nil {
		return nil, err
	}
	return offsetsJSON(committed), nil
}

// parseOffsets reads "topic partition=offset..." into kadm.Offsets.
func parseOffsets(args []string) (kadm.Offsets, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("a topic and partition=offset pairs")
	}
	offsets := kadm.Offsets{}
	for _, arg := range args[1:] {
		ps, os, ok := strings.Cut(arg, "=")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil {
			return nil, fmt.Errorf("%q is not partition=offset", arg)
		}
		offsets.Add(kadm.Offset{Topic: args[0], Partition: int32(p), At: o, LeaderEpoch: -1})
	}
	return offsets, nil
}

// keyValues is a repeatable key=value flag.
type keyValues [][2]string

func (kv *keyValues) String() string { return fmt.Sprint(*kv) }

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not key=value", s)
	}
	*kv = append(*kv, [2]string{k, v})
	return nil
}
