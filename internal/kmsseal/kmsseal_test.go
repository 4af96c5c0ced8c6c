package kmsseal_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/merchantsync/merchantsync/internal/kmsseal"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A sealed secret opens for its own webhook only, against KMS on moto.
func TestSealOpensOnlyForItsWebhook(t *testing.T) {
	ctx := context.Background()
	s := kmsseal.New(testenv.KMSClient(t), testenv.NewKey(t))
	secret := webhook.NewSecret()
	sealed, err := s.Seal(ctx, "t1", "wh_1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret.Reveal())) || bytes.Contains(sealed, secret.Key()) {
		t.Fatal("the sealed secret holds the secret in the clear")
	}
	got, err := s.Open(ctx, "t1", "wh_1", sealed)
	if err != nil || got.Reveal() != secret.Reveal() {
		t.Fatalf("Open = %v, %v", got, err)
	}
	for _, k := range [][2]string{{"t2", "wh_1"}, {"t1", "wh_2"}} {
		if _, err := s.Open(ctx, k[0], k[1], sealed); !errors.Is(err, kmsseal.ErrWrongWebhook) {
			t.Errorf("Open as %v: %v, want ErrWrongWebhook", k, err)
		}
	}
	other := kmsseal.New(testenv.KMSClient(t), testenv.NewKey(t))
	if _, err := other.Open(ctx, "t1", "wh_1", sealed); err == nil {
		t.Error("a sealer with another key opened the secret")
	}
	if _, err := kmsseal.New(testenv.KMSClient(t), "").Seal(ctx, "t1", "wh_1", secret); err == nil {
		t.Error("sealing without a key succeeded")
	}
}
