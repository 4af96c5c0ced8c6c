// Package testenv gives tests real AWS services on this machine: moto's
// server (moto_server, moto 5.2.1, installed by infra/scripts/install-moto.sh)
// for SQS, Secrets Manager, EventBridge and KMS, behind the real SDK v2
// clients.
//
// # The server
//
// MotoEndpoint is $MERCHANTSYNC_MOTO_ENDPOINT when set (infra/scripts/test.sh
// starts one moto for the whole run with infra/scripts/moto.sh); otherwise
// the first call starts moto_server for this test binary on a free loopback
// port, and Main (or, without it, the parent-death signal) stops it when the
// binary exits. moto missing, or another release than MotoVersion, fails
// the test, never skips it.
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestX(t *testing.T) {
//		var calls testenv.Counter
//		c := testenv.SQSClient(t, testenv.WithTransport(calls.Wrap))
//		url, dlq := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 1, DLQ: true, MaxReceiveCount: 2})
//		… c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, …})
//		msgs := testenv.Drain(t, dlq)
//	}
//
// Every test shares the one server, and nothing resets it: isolation comes
// from names. NewQueue, SecretPrefix, NewEventBus, RouteToQueue and NewKey
// name what they create after the test with a random suffix and delete it
// when the test ends (KMS keys are scheduled for deletion, the shortest KMS
// allows). Resources live in moto's default account, AccountID, in Region.
//
// Clients take WithTransport (to count requests with a Counter, fail them
// with FailRequests, or anything else on the wire) and WithMaxAttempts
// (default 3, as in production; retries back off 5 ms).
//
// # Where moto is not AWS, nor the fakes it replaces
//
// Each is proved by a test of this package that fails when moto changes.
//
// SQS
//   - Cost grows with a queue's depth: each message sent computes every
//     queue attribute, counting all the queue's messages, and each receive
//     scans them, so filling one queue is quadratic: about 3.5 s for 500
//     messages, 12 s for 1,000, 45 s for 2,000 on a 2-core machine (goaws:
//     20–80 ms; see BenchmarkMoto's Fill). 10,000 messages do not fit in a
//     test's time, even with consumers receiving as it sends: a test of
//     that scale sends at most a few hundred messages to moto and checks
//     the rest where it does not need a queue (e.g. counting calls).
//   - A SendMessageBatch entry fails only for DelaySeconds over 900, and moto
//     then writes SenderFault as the string "true", which the SDK cannot
//     parse: the call returns a deserialization error although the other
//     entries were sent. moto has no transient entry failures. So a test of
//     retrying Failed entries injects them at the code's own port (an
//     interface over SendMessageBatch that the test wraps), not on the wire.
//   - A queue's default MaximumMessageSize is 1 MiB (AWS: 256 KiB by
//     default, 1 MiB at most), and a body is measured in characters, not
//     bytes; a body over the limit fails the whole batch with
//     InvalidParameterValue. Characters AWS refuses (U+0000, U+FFFE) are
//     accepted.
//   - Nothing can be read without receiving it (goaws had Peek): Drain
//     receives and deletes. QueueCount adds visible, in-flight and delayed
//     messages (AWS's ApproximateNumberOfMessages, and moto's, counts the
//     visible only; goaws counted in-flight ones too).
//   - ApproximateFirstReceiveTimestamp keeps the first receive, as AWS
//     does (goaws stamped each receive).
//   - A message goes to the dead-letter queue when a receive finds it
//     already received maxReceiveCount times, as in AWS; it keeps its id
//     and its receive count goes on. Redrive happens only inside a
//     ReceiveMessage of the source queue.
//   - A long poll re-checks the queue about once a second for messages
//     whose visibility ran out (a new message wakes it at once).
//
// Secrets Manager
//   - Names, value sizes and KmsKeyId are not validated: any name, a
//     65,537-byte value and an alias that does not exist are all accepted.
//     Tests of those limits test the code's own checks (with a Counter
//     showing no request went out).
//   - A secret scheduled for deletion: GetSecretValue answers
//     InvalidRequestException, worded "You tried to perform the operation on
//     a secret that's currently marked deleted." (after a run of spaces)
//     where AWS says "…because it was marked for deletion."; PutSecretValue
//     succeeds and writes a version (AWS: InvalidRequestException);
//     CreateSecret of the name is ResourceExistsException (AWS:
//     InvalidRequestException "…already scheduled for deletion."). Tests of
//     AWS's answers inject them with FailRequests.FailWithMessage.
//   - A forced delete of a secret that does not exist succeeds.
//   - There is no fault injection in moto (the fake had InjectError):
//     FailRequests does it on the wire, before the request reaches moto.
//
// EventBridge
//   - Delivery to an SQS target happens inside PutEvents (AWS delivers
//     asynchronously: a test meant to hold on AWS too long-polls), costs
//     about 150 ms per event and target (moto parses its default input
//     template's JSONPaths for each), and the delivered envelope has no
//     "account" field. The queue's policy is not checked.
//   - PutEvents answers MalformedDetail for a Detail that is not JSON and
//     InvalidArgument for a missing Source, DetailType or Detail.
//
// KMS
//   - A key pending deletion still encrypts (AWS: KMSInvalidStateException).
//   - DescribeKey leaves KeyUsage empty unless CreateKey named it.
package testenv
