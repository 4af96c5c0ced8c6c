package testenv_test

import (
	"testing"

	"github.com/merchantsync/merchantsync/internal/queue/sqstest"
)

// The goaws shim's figures beside moto's (BenchmarkMoto/SQS), on the same
// calls. Delete this file with internal/queue/sqstest.
func BenchmarkGoaws(b *testing.B) {
	env := sqstest.StartWith(b, sqstest.QueueOptions{})
	b.Run("SQS", func(b *testing.B) { benchSQS(b, env.Client, env.QueueURL) })
}
