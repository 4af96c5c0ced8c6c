package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Every test shares one moto server, so isolation comes from names: each
// helper here names what it creates after the test plus a random suffix and
// deletes it when the test ends. Nothing ever resets the server.

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// UniqueName returns a name for a resource of t: t.Name() in
// [A-Za-z0-9_-], cut so that the name with its random suffix has at most
// maxLen characters.
func UniqueName(t testing.TB, maxLen int) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := "-" + hex.EncodeToString(b[:])
	base := unsafeName.ReplaceAllString(t.Name(), "_")
	if n := maxLen - len(suffix); len(base) > n {
		base = base[:max(n, 0)]
	}
	return base + suffix
}

// QueueOptions configure NewQueue.
type QueueOptions struct {
	// VisibilityTimeout in seconds; 0 means 30 (AWS's default).
	VisibilityTimeout int
	// DLQ creates a dead-letter queue too, with a redrive policy of
	// MaxReceiveCount receives (0 means 3).
	DLQ             bool
	MaxReceiveCount int
}

// NewQueue creates a standard queue (and its dead-letter queue when o.DLQ)
// for t and deletes them when t ends. dlqURL is empty without o.DLQ.
func NewQueue(t testing.TB, o QueueOptions) (url, dlqURL string) {
	t.Helper()
	c := SQSClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	name := UniqueName(t, 76) // room for "-dlq" within SQS's 80
	attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(cmp(o.VisibilityTimeout, 30))}
	if o.DLQ {
		dlqURL = createQueue(t, c, name+"-dlq", nil)
		a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(dlqURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			t.Fatalf("testenv: DLQ ARN: %v", err)
		}
		policy, _ := json.Marshal(map[string]any{
			"deadLetterTargetArn": a.Attributes["QueueArn"],
			"maxReceiveCount":     cmp(o.MaxReceiveCount, 3),
		})
		attrs["RedrivePolicy"] = string(policy)
	}
	return createQueue(t, c, name, attrs), dlqURL
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func createQueue(t testing.TB, c *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	ctx, cancel := opCtx()
	defer cancel()
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("testenv: create queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := opCtx()
		defer cancel()
		if _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Logf("testenv: delete queue %s: %v", name, err)
		}
	})
	return url
}

// QueueARN returns the ARN of the queue at url.
func QueueARN(t testing.TB, url string) string {
	t.Helper()
	return queueAttrs(t, url, sqstypes.QueueAttributeNameQueueArn)["QueueArn"]
}

// QueueCount returns how many messages the queue holds: visible, in flight
// and delayed (AWS's ApproximateNumberOfMessages counts the visible only).
func QueueCount(t testing.TB, url string) int {
	t.Helper()
	a := queueAttrs(t, url, sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)
	n := 0
	for _, v := range a {
		k, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("testenv: queue count %q: %v", v, err)
		}
		n += k
	}
	return n
}

func queueAttrs(t testing.TB, url string, names ...sqstypes.QueueAttributeName) map[string]string {
	t.Helper()
	ctx, cancel := opCtx()
	defer cancel()
	out, err := SQSClient(t).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: names})
	if err != nil {
		t.Fatalf("testenv: queue attributes of %s: %v", url, err)
	}
	return out.Attributes
}

// Drain receives and deletes every visible message of the queue and returns
// them, with all their attributes. moto cannot show a queue's messages
// without receiving them, so this replaces peeking.
func Drain(t testing.TB, url string) []sqstypes.Message {
	t.Helper()
	c := SQSClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	var all []sqstypes.Message
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 300,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			t.Fatalf("testenv: drain %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		del := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			del[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		d, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del})
		if err != nil || len(d.Failed) > 0 {
			t.Fatalf("testenv: drain %s: delete: %v %+v", url, err, d)
		}
		all = append(all, out.Messages...)
	}
}

// SecretPrefix returns a secret name prefix of t's own (without a trailing
// slash, as a secrets.Store takes it). Every secret named under
// SecretPrefix(t)+"/" is force-deleted when t ends.
func SecretPrefix(t testing.TB) string {
	t.Helper()
	prefix := "testenv/" + UniqueName(t, 200)
	c := SecretsManagerClient(t)
	t.Cleanup(func() {
		for _, name := range secretNames(t, c, prefix+"/") {
			ctx, cancel := opCtx()
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)})
			cancel()
			if err != nil {
				t.Logf("testenv: delete secret %s: %v", name, err)
			}
		}
	})
	return prefix
}

// SecretNames returns the names of every secret whose name starts with
// prefix, those scheduled for deletion included, sorted.
func SecretNames(t testing.TB, prefix string) []string {
	t.Helper()
	return secretNames(t, SecretsManagerClient(t), prefix)
}

func secretNames(t testing.TB, c *secretsmanager.Client, prefix string) []string {
	t.Helper()
	ctx, cancel := opCtx()
	defer cancel()
	var names []string
	p := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{
		IncludePlannedDeletion: aws.Bool(true),
		Filters:                []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{prefix}}},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("testenv: list secrets %s: %v", prefix, err)
		}
		for _, s := range out.SecretList {
			names = append(names, aws.ToString(s.Name))
		}
	}
	sort.Strings(names)
	return names
}

// SecretValues returns the current SecretString of every readable secret
// whose name starts with prefix, by name. A secret scheduled for deletion
// is in SecretNames but not here: Secrets Manager will not read it.
func SecretValues(t testing.TB, prefix string) map[string]string {
	t.Helper()
	c := SecretsManagerClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	out := map[string]string{}
	for _, name := range secretNames(t, c, prefix) {
		v, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		var invalid *smtypes.InvalidRequestException
		if errors.As(err, &invalid) {
			continue
		}
		if err != nil {
			t.Fatalf("testenv: read secret %s: %v", name, err)
		}
		out[name] = aws.ToString(v.SecretString)
	}
	return out
}

// NewEventBus creates an event bus for t and, when t ends, deletes it with
// its rules, their targets and its archives.
func NewEventBus(t testing.TB) string {
	t.Helper()
	c := EventBridgeClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	name := UniqueName(t, 256)
	out, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("testenv: create event bus: %v", err)
	}
	busARN := aws.ToString(out.EventBusArn)
	t.Cleanup(func() {
		ctx, cancel := opCtx()
		defer cancel()
		if err := deleteEventBus(ctx, c, name, busARN); err != nil {
			t.Logf("testenv: delete event bus %s: %v", name, err)
		}
	})
	return name
}

// RouteToQueue adds a rule to bus that sends the events matching pattern
// (an EventBridge event pattern) to a new queue of t, and returns the
// queue's URL: each delivered event is one message, its body the event's
// JSON envelope. moto delivers at once, inside PutEvents.
func RouteToQueue(t testing.TB, bus, pattern string) (queueURL string) {
	t.Helper()
	queueURL, _ = NewQueue(t, QueueOptions{})
	c := EventBridgeClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	rule := UniqueName(t, 64)
	if _, err := c.PutRule(ctx, &eventbridge.PutRuleInput{
		Name: aws.String(rule), EventBusName: aws.String(bus), EventPattern: aws.String(pattern),
	}); err != nil {
		t.Fatalf("testenv: put rule: %v", err)
	}
	out, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(QueueARN(t, queueURL))}},
	})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("testenv: put target: %v %+v", err, out)
	}
	return queueURL
}

// NewKey creates a symmetric KMS key for t and returns its id; when t ends
// it is scheduled for deletion (KMS deletes nothing at once: 7 days is the
// shortest window).
func NewKey(t testing.TB) string {
	t.Helper()
	c := KMSClient(t)
	ctx, cancel := opCtx()
	defer cancel()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("testenv " + t.Name())})
	if err != nil {
		t.Fatalf("testenv: create key: %v", err)
	}
	id := aws.ToString(out.KeyMetadata.KeyId)
	t.Cleanup(func() {
		ctx, cancel := opCtx()
		defer cancel()
		if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Logf("testenv: schedule deletion of key %s: %v", id, err)
		}
	})
	return id
}

// deleteEventBus deletes the bus's archives, its rules with their targets,
// then the bus: EventBridge refuses to delete a rule that has targets.
func deleteEventBus(ctx context.Context, c *eventbridge.Client, name, arn string) error {
	archives, err := c.ListArchives(ctx, &eventbridge.ListArchivesInput{EventSourceArn: aws.String(arn)})
	if err != nil {
		return err
	}
	for _, a := range archives.Archives {
		if _, err := c.DeleteArchive(ctx, &eventbridge.DeleteArchiveInput{ArchiveName: a.ArchiveName}); err != nil {
			return err
		}
	}
	rules, err := c.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String(name)})
	if err != nil {
		return err
	}
	for _, r := range rules.Rules {
		tg, err := c.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: r.Name, EventBusName: aws.String(name)})
		if err != nil {
			return err
		}
		if len(tg.Targets) > 0 {
			ids := make([]string, len(tg.Targets))
			for i, tgt := range tg.Targets {
				ids[i] = aws.ToString(tgt.Id)
			}
			if _, err := c.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: r.Name, EventBusName: aws.String(name), Ids: ids}); err != nil {
				return err
			}
		}
		if _, err := c.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: r.Name, EventBusName: aws.String(name)}); err != nil {
			return err
		}
	}
	_, err = c.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: aws.String(name)})
	return err
}
