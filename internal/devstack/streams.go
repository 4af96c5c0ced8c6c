package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/merchantsync/merchantsync/internal/backoff"
)

// StreamPoller emulates Lambda's DynamoDB Streams event source mapping for
// the local stack, as queue.Poller emulates the SQS one: it reads every
// shard of a table's stream in order, hands batches to Handler as an
// events.DynamoDBEvent built the way Lambda builds it, and moves on only
// past what the handler processed (ReportBatchItemFailures semantics).
//
// Like the mapping, it reads a shard's parent to its end before the shard
// itself (a split or a new stream generation keeps each item's changes in
// order), a batch comes from one shard, and a failing batch blocks its
// shard: a stream has no visibility timeout or DLQ, so what fails is
// retried until it succeeds (the mapping's MaximumRetryAttempts -1).
//
// A StreamPoller is not safe for concurrent use: Run, or PollOnce in a
// loop, from one goroutine.
type StreamPoller struct {
	Client *dynamodbstreams.Client
	// StreamARN is the table's stream (DescribeTable's LatestStreamArn);
	// it is the records' eventSourceARN.
	StreamARN string
	Handler   func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)
	// BatchSize is the most records per event; 0 means 100 (Lambda's
	// default). GetRecords returns at most 1,000 per call, so larger
	// batches are gathered over several calls.
	BatchSize int
	// Interval is the wait between polls of a stream with nothing new, and
	// before a failed batch is retried; 0 means 200ms.
	Interval time.Duration
	// TrimHorizon starts at the oldest record of each shard instead of
	// LATEST (the mapping's StartingPosition). Shards that appear after
	// the first poll are always read from their start, as Lambda does:
	// otherwise a split would lose the records written before it was seen.
	TrimHorizon bool
	// Region is awsRegion in the records; empty means the ARN's region.
	Region string
	Logger *slog.Logger

	shards map[string]*shardState
	order  []string // shard ids in the order they were found: parents first
}

// shardState is the poller's position in one shard.
type shardState struct {
	id, parent string
	// iter is the next GetRecords iterator; empty once the shard is
	// closed and read to its end.
	iter string
	// last is the sequence number of the last record read from the
	// shard, to get a new iterator after it when iter expires.
	last string
	// start is the iterator type to use while nothing has been read.
	start streamtypes.ShardIteratorType
	// pending are records read but not yet processed: a failed batch's
	// records stay here and are delivered again.
	pending []streamtypes.Record
	done    bool
}

func (p *StreamPoller) log() *slog.Logger {
	l := p.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("stream", p.StreamARN)
}

func (p *StreamPoller) interval() time.Duration {
	if p.Interval <= 0 {
		return 200 * time.Millisecond
	}
	return p.Interval
}

// Run polls until ctx is done, then returns nil. A handler that returns an
// error or panics fails its whole batch, which is delivered again after
// Interval, forever, as the mapping does with MaximumRetryAttempts -1. A
// response whose BatchItemFailures names a record that is not in the batch
// (or an empty id) also fails the whole batch, as in Lambda.
func (p *StreamPoller) Run(ctx context.Context) error {
	if p.Client == nil || p.StreamARN == "" || p.Handler == nil {
		return errors.New("devstack: StreamPoller needs Client, StreamARN and Handler")
	}
	log := p.log()
	wait := p.interval()
	for ctx.Err() == nil {
		n, err := p.PollOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("stream poller: poll", "err", err)
			if backoff.Sleep(ctx, wait) != nil {
				return nil
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		wait = p.interval()
		// Nothing processed: the stream is idle or a batch failed. Either
		// way, wait before asking again.
		if n == 0 && backoff.Sleep(ctx, p.interval()) != nil {
			return nil
		}
	}
	return nil
}

// PollOnce looks for new shards, then delivers at most one batch per shard
// whose parent is done. It returns how many records the handler processed
// (failed ones not counted). The first call positions the poller: with
// LATEST, records written after it returns are delivered, none before.
// Run calls it in a loop; tests may call it directly.
func (p *StreamPoller) PollOnce(ctx context.Context) (int, error) {
	if p.Client == nil || p.StreamARN == "" || p.Handler == nil {
		return 0, errors.New("devstack: StreamPoller needs Client, StreamARN and Handler")
	}
	if err := p.discover(ctx); err != nil {
		return 0, err
	}
	processed := 0
	for _, id := range p.order {
		s := p.shards[id]
		if s.done {
			continue
		}
		if parent, ok := p.shards[s.parent]; ok && !parent.done {
			continue // the parent's records come first
		}
		n, err := p.pollShard(ctx, s)
		processed += n
		if err != nil {
			return processed, err
		}
	}
	return processed, nil
}

// discover adds the stream's shards that are not known yet. On the first
// call, shards already closed are done under LATEST (nothing new will be
// written to them) and the open ones start at LATEST; shards found later
// start at TRIM_HORIZON.
func (p *StreamPoller) discover(ctx context.Context) error {
	first := p.shards == nil
	if first {
		p.shards = map[string]*shardState{}
	}
	var found []streamtypes.Shard
	var start *string
	for {
		out, err := p.Client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{
			StreamArn:             aws.String(p.StreamARN),
			ExclusiveStartShardId: start,
		})
		if err != nil {
			if first {
				p.shards = nil // try again from the start
			}
			return fmt.Errorf("describe stream: %w", err)
		}
		found = append(found, out.StreamDescription.Shards...)
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			break
		}
	}
	// DescribeStream lists parents before children, but do not rely on
	// it: add a shard only after its parent (when listed).
	listed := map[string]bool{}
	for _, sh := range found {
		listed[aws.ToString(sh.ShardId)] = true
	}
	for added := true; added; {
		added = false
		for _, sh := range found {
			id, parent := aws.ToString(sh.ShardId), aws.ToString(sh.ParentShardId)
			if _, ok := p.shards[id]; ok {
				continue
			}
			if _, ok := p.shards[parent]; listed[parent] && !ok {
				continue
			}
			s := &shardState{id: id, parent: parent, start: streamtypes.ShardIteratorTypeTrimHorizon}
			latest := first && !p.TrimHorizon
			if latest {
				s.done = sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			}
			if !s.done {
				it, err := p.iterator(ctx, s)
				if err == nil && latest {
					it, err = p.skipToEnd(ctx, s, it)
				}
				if err != nil {
					if first {
						p.shards, p.order = nil, nil
					}
					return err
				}
				s.iter = it
			}
			p.shards[id] = s
			p.order = append(p.order, id)
			added = true
		}
	}
	return nil
}

// skipToEnd reads s from it to its current end, dropping the records, and
// returns the iterator after them: LATEST, taken when the poller starts,
// with s.last the last record skipped. DynamoDB Local's own LATEST iterator
// on an empty shard is refused once records arrive, and a new LATEST one
// then would skip them.
func (p *StreamPoller) skipToEnd(ctx context.Context, s *shardState, it string) (string, error) {
	for it != "" {
		out, err := p.Client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(1000)})
		if err != nil {
			return "", fmt.Errorf("get records %s: %w", s.id, err)
		}
		n := len(out.Records)
		if n > 0 {
			s.last = aws.ToString(out.Records[n-1].Dynamodb.SequenceNumber)
		}
		if n == 0 {
			return aws.ToString(out.NextShardIterator), nil
		}
		it = aws.ToString(out.NextShardIterator)
	}
	return "", nil
}

// iterator returns a new iterator for s: after its last record read, or
// at its start type when nothing was read.
func (p *StreamPoller) iterator(ctx context.Context, s *shardState) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{
		StreamArn:         aws.String(p.StreamARN),
		ShardId:           aws.String(s.id),
		ShardIteratorType: s.start,
	}
	if s.last != "" {
		in.ShardIteratorType = streamtypes.ShardIteratorTypeAfterSequenceNumber
		in.SequenceNumber = aws.String(s.last)
	}
	out, err := p.Client.GetShardIterator(ctx, in)
	if err != nil {
		return "", fmt.Errorf("get shard iterator %s: %w", s.id, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// pollShard tops up s's pending records to a batch, delivers them and
// drops what the handler processed.
func (p *StreamPoller) pollShard(ctx context.Context, s *shardState) (int, error) {
	size := p.BatchSize
	if size <= 0 {
		size = 100
	}
	refreshed := false
	for s.iter != "" && len(s.pending) < size {
		out, err := p.Client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{
			ShardIterator: aws.String(s.iter),
			Limit:         aws.Int32(int32(min(size-len(s.pending), 1000))),
		})
		var expired *streamtypes.ExpiredIteratorException
		var trimmed *streamtypes.TrimmedDataAccessException
		if (errors.As(err, &expired) || errors.As(err, &trimmed)) && !refreshed {
			// Iterators last 15 minutes: a batch retried that long
			// outlives its shard's. And DynamoDB Local refuses an
			// iterator taken while its shard was empty once records
			// arrive (TrimmedDataAccessException). A new iterator, after
			// the last record read (or from the shard's start when none
			// was), reads on; once per poll, so a refusal that persists
			// is an error.
			refreshed = true
			if s.iter, err = p.iterator(ctx, s); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("get records %s: %w", s.id, err)
		}
		s.iter = aws.ToString(out.NextShardIterator) // empty: closed and read
		s.pending = append(s.pending, out.Records...)
		if n := len(out.Records); n > 0 {
			s.last = aws.ToString(out.Records[n-1].Dynamodb.SequenceNumber)
		} else {
			break // nothing more for now
		}
	}
	if len(s.pending) == 0 {
		s.done = s.iter == ""
		return 0, nil
	}
	batch := s.pending[:min(len(s.pending), size)]
	n := p.deliver(ctx, s.id, batch)
	s.pending = s.pending[n:]
	s.done = s.iter == "" && len(s.pending) == 0
	return n, nil
}

// deliver runs the handler on batch and returns how many of its records
// were processed: all, none (an error, a panic or an unknown item
// identifier), or those before the first one reported in
// BatchItemFailures, from which the next delivery resumes.
func (p *StreamPoller) deliver(ctx context.Context, shard string, batch []streamtypes.Record) int {
	log := p.log().With("shard", shard)
	region := p.Region
	if region == "" {
		region = regionOf(p.StreamARN)
	}
	ev := events.DynamoDBEvent{Records: make([]events.DynamoDBEventRecord, len(batch))}
	for i, r := range batch {
		ev.Records[i] = StreamRecord(r, p.StreamARN, region)
	}
	resp, err := p.invoke(ctx, ev)
	if err != nil {
		log.Error("stream poller: handler failed; the batch will be retried", "records", len(batch), "err", err)
		return 0
	}
	if len(resp.BatchItemFailures) == 0 {
		return len(batch)
	}
	first := len(batch)
	for _, f := range resp.BatchItemFailures {
		i := -1
		for j, r := range ev.Records {
			if f.ItemIdentifier != "" && r.Change.SequenceNumber == f.ItemIdentifier {
				i = j
				break
			}
		}
		if i < 0 {
			log.Error("stream poller: BatchItemFailures names a record not in the batch; the batch fails as a whole", "itemIdentifier", f.ItemIdentifier)
			return 0
		}
		first = min(first, i)
	}
	log.Warn("stream poller: the handler reported failures; resuming from the first", "records", len(batch), "processed", first, "sequenceNumber", ev.Records[first].Change.SequenceNumber)
	return first
}

func (p *StreamPoller) invoke(ctx context.Context, ev events.DynamoDBEvent) (resp events.DynamoDBEventResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return p.Handler(ctx, ev)
}
