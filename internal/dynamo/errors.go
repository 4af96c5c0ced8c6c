package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// throttleCodes are DynamoDB's throttling error codes (also used as
// cancellation reasons of transactions).
var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
	"ThrottlingError":                        true,
	"ProvisionedThroughputExceeded":          true,
}

// isThrottle reports whether err is throttling that survived the SDK's own
// retries (or its retry quota ran out).
func isThrottle(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && throttleCodes[api.ErrorCode()] {
		return true
	}
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return true
	}
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if r.Code != nil && throttleCodes[*r.Code] {
				return true
			}
		}
	}
	return false
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// cancelReasons returns the cancellation reason codes of a canceled
// transaction ("None", "ConditionalCheckFailed", "TransactionConflict", …),
// one per action, or nil when err is not a cancellation.
func cancelReasons(err error) []string {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil
	}
	codes := make([]string, len(tc.CancellationReasons))
	for i, r := range tc.CancellationReasons {
		if r.Code != nil {
			codes[i] = *r.Code
		}
	}
	return codes
}

// retryableCancel reports whether a canceled transaction lost a race (a
// condition on state read just before, or a conflicting transaction) and
// should be retried after reading again.
func retryableCancel(err error) bool {
	for _, c := range cancelReasons(err) {
		if c == "ConditionalCheckFailed" || c == "TransactionConflict" {
			return true
		}
	}
	var tip *types.TransactionInProgressException
	return errors.As(err, &tip)
}

// wrap turns an SDK error into what the domain understands: throttling →
// EThrottled (the caller may retry later), context errors unchanged,
// anything else an internal error carrying the SDK's detail for logs.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("dynamo: %s: %w", op, err)
	}
	var me *merchantsync.Error
	if errors.As(err, &me) {
		return err
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" {
		// DynamoDB refuses the request itself (an item too large, a key
		// out of range): sending it again cannot succeed.
		return fmt.Errorf("dynamo: %s: %w: %w", op, merchantsync.ErrRejected, err)
	}
	if isThrottle(err) {
		return fmt.Errorf("%w (%w)", merchantsync.Errorf(merchantsync.EThrottled,
			"The database is busy right now; please retry shortly."), fmt.Errorf("dynamo: %s: %w", op, err))
	}
	return fmt.Errorf("dynamo: %s: %w", op, err)
}

// errRaced is returned when an optimistic read-then-write lost its race too
// many times in a row.
func errRaced(op string) error {
	return merchantsync.Errorf(merchantsync.EConflict, "%s changed concurrently too often; please retry", op)
}
