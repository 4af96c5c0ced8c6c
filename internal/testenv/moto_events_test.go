package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

// envelope is the JSON EventBridge delivers to an SQS target.
type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// PutEvents answers an EventId per accepted entry and an ErrorCode per
// refused one, in order, with FailedEntryCount; a rule's SQS target gets
// each matching event at once, as one message holding the event envelope;
// an event the pattern does not match is not delivered.
func TestEventBridgePutEventsToQueue(t *testing.T) {
	ctx := context.Background()
	c := testenv.EventBridgeClient(t, testenv.WithMaxAttempts(1))
	bus := testenv.NewEventBus(t)
	queue := testenv.RouteToQueue(t, bus, `{"source":["merchantsync.sync"],"detail-type":["SyncFinished"]}`)
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{EventBusName: aws.String(bus), Source: aws.String("merchantsync.sync"), DetailType: aws.String("SyncFinished"),
			Detail: aws.String(`{"tenantId":"t1","changes":3}`), Time: aws.Time(at), Resources: []string{"arn:aws:dynamodb:us-east-1:1:table/x"}},
		{EventBusName: aws.String(bus), Source: aws.String("merchantsync.sync"), DetailType: aws.String("SyncFinished"), Detail: aws.String(`{not json`)},
		{EventBusName: aws.String(bus), Source: aws.String("merchantsync.other"), DetailType: aws.String("SyncFinished"), Detail: aws.String(`{"tenantId":"t2"}`)},
		{EventBusName: aws.String(bus), DetailType: aws.String("SyncFinished"), Detail: aws.String(`{}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 2 || len(out.Entries) != 4 {
		t.Fatalf("PutEvents = %d failed, %+v; want 2 of 4", out.FailedEntryCount, out.Entries)
	}
	e := out.Entries
	if aws.ToString(e[0].EventId) == "" || aws.ToString(e[1].ErrorCode) != "MalformedDetail" ||
		aws.ToString(e[2].EventId) == "" || aws.ToString(e[3].ErrorCode) != "InvalidArgument" {
		t.Errorf("entries = %+v, want an id, MalformedDetail, an id, InvalidArgument (no Source)", e)
	}

	msgs := testenv.Drain(t, queue)
	if len(msgs) != 1 {
		t.Fatalf("queue got %d messages, want the one matching event", len(msgs))
	}
	var ev envelope
	if err := json.Unmarshal([]byte(aws.ToString(msgs[0].Body)), &ev); err != nil {
		t.Fatalf("message body %q: %v", aws.ToString(msgs[0].Body), err)
	}
	var detail map[string]any
	if err := json.Unmarshal(ev.Detail, &detail); err != nil || detail["tenantId"] != "t1" || detail["changes"] != 3.0 {
		t.Errorf("delivered detail %s (%v)", ev.Detail, err)
	}
	if ev.ID != aws.ToString(e[0].EventId) || ev.Version != "0" || ev.Source != "merchantsync.sync" || ev.DetailType != "SyncFinished" ||
		ev.Region != testenv.Region || ev.Time != "2026-11-27T03:00:00Z" || len(ev.Resources) != 1 {
		t.Errorf("delivered envelope = %s", aws.ToString(msgs[0].Body))
	}
	// AWS's envelope names the account; moto's leaves it out.
	if ev.Account != "" {
		t.Errorf("delivered envelope has account %q: moto used to leave it out, update the package doc", ev.Account)
	}
}

// An archive on a bus keeps the events sent to the bus that match its
// pattern, counted in DescribeArchive's EventCount.
func TestEventBridgeArchive(t *testing.T) {
	ctx := context.Background()
	c := testenv.EventBridgeClient(t, testenv.WithMaxAttempts(1))
	bus := testenv.NewEventBus(t)
	b, err := c.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(bus)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:events:" + testenv.Region + ":" + testenv.AccountID + ":event-bus/" + bus; aws.ToString(b.Arn) != want {
		t.Errorf("bus ARN %s, want %s", aws.ToString(b.Arn), want)
	}
	name := testenv.UniqueName(t, 48)
	a, err := c.CreateArchive(ctx, &eventbridge.CreateArchiveInput{
		ArchiveName: aws.String(name), EventSourceArn: b.Arn, RetentionDays: aws.Int32(7),
		EventPattern: aws.String(`{"source":["merchantsync.sync"]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != types.ArchiveStateEnabled {
		t.Errorf("archive state %s", a.State)
	}
	entry := func(source string) types.PutEventsRequestEntry {
		return types.PutEventsRequestEntry{EventBusName: aws.String(bus), Source: aws.String(source), DetailType: aws.String("d"), Detail: aws.String(`{}`)}
	}
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		entry("merchantsync.sync"), entry("merchantsync.sync"), entry("merchantsync.other"),
	}})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, out)
	}
	d, err := c.DescribeArchive(ctx, &eventbridge.DescribeArchiveInput{ArchiveName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if d.EventCount != 2 || aws.ToString(d.EventSourceArn) != aws.ToString(b.Arn) || aws.ToInt32(d.RetentionDays) != 7 {
		t.Errorf("DescribeArchive = %d events, source %s, %d days; want the 2 matching events", d.EventCount, aws.ToString(d.EventSourceArn), aws.ToInt32(d.RetentionDays))
	}
	t.Logf("archive SizeBytes %d", d.SizeBytes)

	_, err = c.CreateArchive(ctx, &eventbridge.CreateArchiveInput{ArchiveName: aws.String(name), EventSourceArn: b.Arn})
	var exists *types.ResourceAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("second CreateArchive: %v, want ResourceAlreadyExistsException", err)
	}
}

// Errors for what does not exist are typed.
func TestEventBridgeErrors(t *testing.T) {
	ctx := context.Background()
	c := testenv.EventBridgeClient(t, testenv.WithMaxAttempts(1))
	bus := testenv.NewEventBus(t)
	var nf *types.ResourceNotFoundException
	_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{EventBusName: aws.String(bus + "-missing"), Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String(`{}`)},
	}})
	if !errors.As(err, &nf) {
		t.Errorf("PutEvents to a missing bus: %v, want ResourceNotFoundException", err)
	}
	_, err = c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("missing"), EventBusName: aws.String(bus),
		Targets: []types.Target{{Id: aws.String("x"), Arn: aws.String("arn:aws:sqs:us-east-1:123456789012:x")}}})
	if !errors.As(err, &nf) {
		t.Errorf("PutTargets on a missing rule: %v, want ResourceNotFoundException", err)
	}
	_, err = c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)})
	var exists *types.ResourceAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("CreateEventBus twice: %v, want ResourceAlreadyExistsException", err)
	}
}
