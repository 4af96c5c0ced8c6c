package devstack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
)

// TestStreamRecordConvertsEveryAttributeType compares StreamRecord's
// output, as JSON, with the record Lambda delivers (the shape of
// aws-lambda-go's testdata/dynamodb-event.json), for every member of the
// AttributeValue union, nested ones included.
func TestStreamRecordConvertsEveryAttributeType(t *testing.T) {
	created := time.Unix(1700000000, 0)
	r := streamtypes.Record{
		AwsRegion:    aws.String("eu-west-1"),
		EventID:      aws.String("ev-1"),
		EventName:    streamtypes.OperationTypeModify,
		EventSource:  aws.String("aws:dynamodb"),
		EventVersion: aws.String("1.1"),
		UserIdentity: &streamtypes.Identity{Type: aws.String("Service"), PrincipalId: aws.String("dynamodb.amazonaws.com")},
		Dynamodb: &streamtypes.StreamRecord{
			ApproximateCreationDateTime: &created,
			Keys: map[string]streamtypes.AttributeValue{
				"PK": &streamtypes.AttributeValueMemberS{Value: "TENANT#t"},
			},
			NewImage: map[string]streamtypes.AttributeValue{
				"s":    &streamtypes.AttributeValueMemberS{Value: "text"},
				"n":    &streamtypes.AttributeValueMemberN{Value: "12.5"},
				"b":    &streamtypes.AttributeValueMemberB{Value: []byte("hi")},
				"t":    &streamtypes.AttributeValueMemberBOOL{Value: true},
				"f":    &streamtypes.AttributeValueMemberBOOL{Value: false},
				"null": &streamtypes.AttributeValueMemberNULL{Value: true},
				"m": &streamtypes.AttributeValueMemberM{Value: map[string]streamtypes.AttributeValue{
					"inner": &streamtypes.AttributeValueMemberN{Value: "1"},
					"l":     &streamtypes.AttributeValueMemberL{Value: []streamtypes.AttributeValue{&streamtypes.AttributeValueMemberS{Value: "deep"}}},
				}},
				"l": &streamtypes.AttributeValueMemberL{Value: []streamtypes.AttributeValue{
					&streamtypes.AttributeValueMemberS{Value: "x"},
					&streamtypes.AttributeValueMemberN{Value: "2"},
					&streamtypes.AttributeValueMemberM{Value: map[string]streamtypes.AttributeValue{"k": &streamtypes.AttributeValueMemberBOOL{Value: true}}},
				}},
				"ss": &streamtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
				"ns": &streamtypes.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
				"bs": &streamtypes.AttributeValueMemberBS{Value: [][]byte{[]byte("x"), []byte("y")}},
			},
			OldImage: map[string]streamtypes.AttributeValue{
				"s": &streamtypes.AttributeValueMemberS{Value: "before"},
			},
			SequenceNumber: aws.String("111"),
			SizeBytes:      aws.Int64(42),
			StreamViewType: streamtypes.StreamViewTypeNewAndOldImages,
		},
	}
	const arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-01-01T00:00:00.000"
	got, err := json.Marshal(StreamRecord(r, arn, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
	  "awsRegion": "us-east-1",
	  "eventID": "ev-1",
	  "eventName": "MODIFY",
	  "eventSource": "aws:dynamodb",
	  "eventVersion": "1.1",
	  "eventSourceARN": "` + arn + `",
	  "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
	  "dynamodb": {
	    "ApproximateCreationDateTime": 1700000000,
	    "Keys": {"PK": {"S": "TENANT#t"}},
	    "NewImage": {
	      "s": {"S": "text"},
	      "n": {"N": "12.5"},
	      "b": {"B": "aGk="},
	      "t": {"BOOL": true},
	      "f": {"BOOL": false},
	      "null": {"NULL": true},
	      "m": {"M": {"inner": {"N": "1"}, "l": {"L": [{"S": "deep"}]}}},
	      "l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"k": {"BOOL": true}}}]},
	      "ss": {"SS": ["a", "b"]},
	      "ns": {"NS": ["1", "2.5"]},
	      "bs": {"BS": ["eA==", "eQ=="]}
	    },
	    "OldImage": {"s": {"S": "before"}},
	    "SequenceNumber": "111",
	    "SizeBytes": 42,
	    "StreamViewType": "NEW_AND_OLD_IMAGES"
	  }
	}`
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("record:\n%s\nwant:\n%s", got, want)
	}
	// And it reads back with aws-lambda-go, as a handler would get it.
	var back events.DynamoDBEventRecord
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	img := back.Change.NewImage
	if img["m"].Map()["l"].List()[0].String() != "deep" || !slices.Equal(img["ns"].NumberSet(), []string{"1", "2.5"}) ||
		string(img["bs"].BinarySet()[1]) != "y" || !img["null"].IsNull() || !img["t"].Boolean() {
		t.Fatalf("read back: %s", got)
	}
}

// TestStreamRecordRegionAndAbsentImages: an empty region means the
// record's own, and a record without images (an INSERT has no OldImage)
// has none in the event, not an empty map.
func TestStreamRecordRegionAndAbsentImages(t *testing.T) {
	r := streamtypes.Record{
		AwsRegion: aws.String("ddblocal"), EventName: streamtypes.OperationTypeInsert,
		Dynamodb: &streamtypes.StreamRecord{
			Keys:     map[string]streamtypes.AttributeValue{"PK": &streamtypes.AttributeValueMemberS{Value: "a"}},
			NewImage: map[string]streamtypes.AttributeValue{"PK": &streamtypes.AttributeValueMemberS{Value: "a"}},
		},
	}
	got := StreamRecord(r, "arn", "")
	if got.AWSRegion != "ddblocal" || got.Change.OldImage != nil || got.UserIdentity != nil {
		t.Fatalf("got %+v", got)
	}
	b, _ := json.Marshal(got)
	var m map[string]map[string]any
	_ = json.Unmarshal(b, &m)
	if _, ok := m["dynamodb"]["OldImage"]; ok {
		t.Fatalf("OldImage present in %s", b)
	}
}

// streamEnv is a fresh table with its stream, and clients for both.
type streamEnv struct {
	ddb     *dynamodb.Client
	streams *dynamodbstreams.Client
	table   string
	arn     string
}

func newStreamEnv(t *testing.T) *streamEnv {
	t.Helper()
	e := &streamEnv{ddb: dynamotest.Client(t)}
	e.table = dynamotest.NewTable(t, e.ddb, dynamotest.WithStream())
	out, err := e.ddb.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatal(err)
	}
	e.arn = aws.ToString(out.Table.LatestStreamArn)
	if e.arn == "" {
		t.Fatal("the table has no stream: dynamo.CreateTableInput must enable it")
	}
	e.streams = dynamodbstreams.New(dynamodbstreams.Options{
		Region:       dynamotest.Region,
		BaseEndpoint: aws.String(dynamotest.Endpoint(t)),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "dynamotest", SecretAccessKey: "dynamotest"}, nil
		}),
	})
	return e
}

func (e *streamEnv) put(t *testing.T, sk, v string) {
	t.Helper()
	_, err := e.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: "TENANT#t"}, "SK": &ddbtypes.AttributeValueMemberS{Value: sk},
		"v": &ddbtypes.AttributeValueMemberS{Value: v},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *streamEnv) key(sk string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: "TENANT#t"}, "SK": &ddbtypes.AttributeValueMemberS{Value: sk},
	}
}

// start positions a poller on e's stream (its first PollOnce: LATEST from
// now on) and runs it until the test ends.
func (e *streamEnv) start(t *testing.T, h func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)) {
	t.Helper()
	p := &StreamPoller{Client: e.streams, StreamARN: e.arn, Handler: h, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := p.PollOnce(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

const streamWait = 20 * time.Second

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(streamWait):
		t.Fatalf("no %s within %s", what, streamWait)
		panic("unreachable")
	}
}

func str(img map[string]events.DynamoDBAttributeValue, k string) string {
	v, ok := img[k]
	if !ok {
		return "<absent>"
	}
	return v.String()
}

func TestStreamPollerDeliversChangesInOrder(t *testing.T) {
	e := newStreamEnv(t)
	e.put(t, "BEFORE", "0") // written before the poller started: LATEST skips it
	recs := make(chan events.DynamoDBEventRecord, 100)
	e.start(t, func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		for _, r := range ev.Records {
			recs <- r
		}
		return events.DynamoDBEventResponse{}, nil
	})
	ctx := context.Background()
	e.put(t, "A", "1")
	if _, err := e.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(e.table), Key: e.key("A"),
		UpdateExpression:          aws.String("SET v = :v"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": &ddbtypes.AttributeValueMemberS{Value: "2"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.table), Key: e.key("A")}); err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, newV, oldV string }{
		{"INSERT", "1", "<absent>"},
		{"MODIFY", "2", "1"},
		{"REMOVE", "<absent>", "2"},
	}
	var seqs []string
	for i, w := range want {
		r := receive(t, recs, fmt.Sprintf("record %d (%s)", i+1, w.name))
		c := r.Change
		if r.EventName != w.name || str(c.NewImage, "v") != w.newV || str(c.OldImage, "v") != w.oldV {
			t.Fatalf("record %d: %s new v=%s old v=%s (SK %s), want %s new v=%s old v=%s",
				i+1, r.EventName, str(c.NewImage, "v"), str(c.OldImage, "v"), str(c.Keys, "SK"), w.name, w.newV, w.oldV)
		}
		if str(c.Keys, "SK") != "A" || str(c.Keys, "PK") != "TENANT#t" {
			t.Fatalf("record %d keys %v", i+1, c.Keys)
		}
		if r.EventSource != "aws:dynamodb" || r.EventVersion != "1.1" || r.EventSourceArn != e.arn || r.AWSRegion == "" ||
			r.EventID == "" || c.SequenceNumber == "" || c.SizeBytes <= 0 || c.StreamViewType != "NEW_AND_OLD_IMAGES" ||
			c.ApproximateCreationDateTime.IsZero() {
			t.Fatalf("record %d is not shaped like Lambda's: %+v", i+1, r)
		}
		seqs = append(seqs, c.SequenceNumber)
	}
	// Sequence numbers are decimal strings that grow within a shard.
	bySeq := func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) }
	if !slices.IsSortedFunc(seqs, bySeq) || len(slices.Compact(slices.Clone(seqs))) != 3 {
		t.Fatalf("sequence numbers %v", seqs)
	}
	select {
	case r := <-recs:
		t.Fatalf("unexpected record %s %v", r.EventName, r.Change.Keys)
	default:
	}
}

// batchKeys returns the SK of each record of a batch.
func batchKeys(ev events.DynamoDBEvent) []string {
	var out []string
	for _, r := range ev.Records {
		out = append(out, str(r.Change.Keys, "SK"))
	}
	return out
}

// TestStreamPollerResumesFromTheFirstFailedRecord: a handler reporting the
// 2nd record of a batch as failed gets records 2.. again, and record 1
// not again.
func TestStreamPollerResumesFromTheFirstFailedRecord(t *testing.T) {
	e := newStreamEnv(t)
	type delivery struct {
		keys []string
		seqs []string
	}
	deliveries := make(chan delivery, 100)
	failed := false // the handler's own
	// The poller is positioned before the writes but runs after them, so
	// its first read finds all four records.
	p := &StreamPoller{Client: e.streams, StreamARN: e.arn, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Handler: func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			d := delivery{keys: batchKeys(ev)}
			for _, r := range ev.Records {
				d.seqs = append(d.seqs, r.Change.SequenceNumber)
			}
			var resp events.DynamoDBEventResponse
			if !failed && len(ev.Records) >= 2 {
				failed = true
				resp.BatchItemFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: ev.Records[1].Change.SequenceNumber}}
			}
			deliveries <- d
			return resp, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sk := range []string{"1", "2", "3", "4"} {
		e.put(t, sk, sk)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	first := receive(t, deliveries, "first batch")
	if !slices.Equal(first.keys, []string{"1", "2", "3", "4"}) {
		t.Fatalf("first batch %v, want all four records written before the first read", first.keys)
	}
	second := receive(t, deliveries, "redelivery")
	if !slices.Equal(second.keys, []string{"2", "3", "4"}) || !slices.Equal(second.seqs, first.seqs[1:]) {
		t.Fatalf("redelivered sequence numbers %v, want %v", second.seqs, first.seqs[1:])
	}
	// Nothing more: record 1 is not delivered again, nor 2.. a third time.
	e.put(t, "5", "5")
	if d := receive(t, deliveries, "the next write"); !slices.Equal(d.keys, []string{"5"}) {
		t.Fatalf("after the redelivery: %v, want only 5", d.keys)
	}
}

// TestStreamPollerRetriesAFailedBatch: a handler that returns an error, or
// panics, gets the same batch again.
func TestStreamPollerRetriesAFailedBatch(t *testing.T) {
	for _, how := range []string{"error", "panic"} {
		t.Run(how, func(t *testing.T) {
			e := newStreamEnv(t)
			batches := make(chan []string, 100)
			calls := 0
			e.start(t, func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
				var seqs []string
				for _, r := range ev.Records {
					seqs = append(seqs, str(r.Change.Keys, "SK")+"@"+r.Change.SequenceNumber)
				}
				batches <- seqs
				calls++
				if calls == 1 {
					if how == "panic" {
						panic("boom")
					}
					return events.DynamoDBEventResponse{}, errors.New("boom")
				}
				return events.DynamoDBEventResponse{}, nil
			})
			e.put(t, "X", "1")
			first := receive(t, batches, "first batch")
			second := receive(t, batches, "retry")
			if len(first) == 0 || !slices.Equal(first, second) {
				t.Fatalf("retry %v, want the failed batch %v again", second, first)
			}
			e.put(t, "Y", "1")
			if third := receive(t, batches, "the next write"); len(third) != 1 || third[0][:2] != "Y@" {
				t.Fatalf("after the retry: %v, want only Y", third)
			}
		})
	}
}
