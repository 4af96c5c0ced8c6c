package dynamo_test

import (
	"encoding/base64"
	"strings"
)

func base64URL(s string) string   { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
func toLower(s string) string     { return strings.ToLower(s) }
func contains(s, sub string) bool { return strings.Contains(s, sub) }
