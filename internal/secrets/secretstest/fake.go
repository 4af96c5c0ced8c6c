// Package secretstest is a small, wire-level fake of AWS Secrets Manager: an
// http.Handler speaking the service's JSON 1.1 protocol (POST /,
// X-Amz-Target: secretsmanager.<Op>), meant to sit behind the real SDK
// client. It implements CreateSecret, GetSecretValue, PutSecretValue,
// DeleteSecret, DescribeSecret and RestoreSecret with AWS's validation
// (name characters and length, value size), AWS's error shapes
// ({"__type": …, "message": …}) and deletion semantics (a secret scheduled
// for deletion blocks its name; a forced delete frees it at once).
//
// The local stack serves it with http.ListenAndServe(addr, secretstest.New()).
package secretstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Region and Account are used in the ARNs the fake hands out.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9-]{32,64}$`)
)

const (
	maxNameLength  = 512
	maxSecretBytes = 65536
)

// Fake is an in-memory Secrets Manager. The zero value is not usable; call New.
type Fake struct {
	mu      sync.Mutex
	secrets map[string]*secret // by name
	calls   map[string]int
	inject  map[string][]string // op → queued error types
	now     func() time.Time
}

type secret struct {
	name, arn   string
	kmsKeyID    string
	description string
	tags        []tag
	created     time.Time
	changed     time.Time
	deletedDate time.Time // zero unless scheduled for deletion
	versions    map[string]*version
	current     string // VersionId of AWSCURRENT
	previous    string // VersionId of AWSPREVIOUS
}

type version struct {
	id      string
	value   *string
	binary  []byte
	created time.Time
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// New returns an empty fake.
func New() *Fake {
	return &Fake{
		secrets: map[string]*secret{},
		calls:   map[string]int{},
		inject:  map[string][]string{},
		now:     time.Now,
	}
}

// Client starts an httptest server for f (closed when the test ends) and
// returns a real Secrets Manager SDK client pointed at it, with static
// credentials. optFns adjust the client (e.g. RetryMaxAttempts).
func (f *Fake) Client(t testing.TB, optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return NewClient(srv.URL, optFns...)
}

// NewClient returns a real SDK client for a fake (or any endpoint) at
// endpoint, with static test credentials.
func NewClient(endpoint string, optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	opts := secretsmanager.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret-key", ""),
	}
	for _, fn := range optFns {
		fn(&opts)
	}
	return secretsmanager.New(opts)
}

// All returns every stored secret's name with its current SecretString,
// including secrets scheduled for deletion, so that tests can scan
// everything the store ever kept.
func (f *Fake) All() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.secrets))
	for n, s := range f.secrets {
		if v := s.versions[s.current]; v != nil && v.value != nil {
			out[n] = *v.value
		} else {
			out[n] = ""
		}
	}
	return out
}

// Tags returns the tags of the named secret (nil when it does not exist).
func (f *Fake) Tags(name string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	if s == nil {
		return nil
	}
	out := map[string]string{}
	for _, t := range s.tags {
		out[t.Key] = t.Value
	}
	return out
}

// KMSKeyID returns the KmsKeyId the named secret was created with.
func (f *Fake) KMSKeyID(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.secrets[name]; s != nil {
		return s.kmsKeyID
	}
	return ""
}

// Calls returns how many requests for op (e.g. "CreateSecret") reached
// the fake, including those answered with an injected error.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// InjectError makes the next times calls of op fail with errType (e.g.
// "InternalServiceError" (HTTP 500), "ThrottlingException",
// "ResourceNotFoundException"). Injected errors are answered before the
// request is looked at, so they change nothing.
func (f *Fake) InjectError(op, errType string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range times {
		f.inject[op] = append(f.inject[op], errType)
	}
}

type apiError struct {
	status int
	typ    string
	msg    string
}

func errorf(typ, format string, args ...any) *apiError {
	status := http.StatusBadRequest
	switch typ {
	case "InternalServiceError", "InternalFailure", "ServiceUnavailable":
		status = http.StatusInternalServerError
	}
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one Secrets Manager JSON 1.1 request.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "secretsmanager.")
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		writeError(w, &apiError{status: http.StatusNotFound, typ: "UnknownOperationException", msg: "POST / only"})
		return
	case !ok:
		writeError(w, errorf("UnknownOperationException", "unknown X-Amz-Target %q", target))
		return
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1"):
		writeError(w, errorf("SerializationException", "Content-Type must be application/x-amz-json-1.1"))
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "):
		writeError(w, errorf("MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, errorf("SerializationException", "cannot read body"))
		return
	}

	f.mu.Lock()
	f.calls[op]++
	if q := f.inject[op]; len(q) > 0 {
		typ := q[0]
		f.inject[op] = q[1:]
		f.mu.Unlock()
		writeError(w, errorf(typ, "injected %s", typ))
		return
	}
	var out any
	var aerr *apiError
	switch op {
	case "CreateSecret":
		out, aerr = decodeAnd(body, f.createSecret)
	case "GetSecretValue":
		out, aerr = decodeAnd(body, f.getSecretValue)
	case "PutSecretValue":
		out, aerr = decodeAnd(body, f.putSecretValue)
	case "DeleteSecret":
		out, aerr = decodeAnd(body, f.deleteSecret)
	case "DescribeSecret":
		out, aerr = decodeAnd(body, f.describeSecret)
	case "RestoreSecret":
		out, aerr = decodeAnd(body, f.restoreSecret)
	default:
		aerr = errorf("UnknownOperationException", "operation %s is not implemented by the fake", op)
	}
	f.mu.Unlock()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", newID())
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", newID())
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func decodeAnd[In any](body []byte, fn func(*In) (any, *apiError)) (any, *apiError) {
	in := new(In)
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(in); err != nil {
		return nil, errorf("SerializationException", "cannot decode request: %v", err)
	}
	return fn(in)
}

func validationError(field, constraint string) *apiError {
	return errorf("ValidationException", "1 validation error detected: Value at '%s' failed to satisfy constraint: %s", field, constraint)
}

func validateName(name string) *apiError {
	if len(name) < 1 || len(name) > maxNameLength {
		return validationError("name", "Member must have length less than or equal to 512")
	}
	if !namePattern.MatchString(name) {
		return errorf("InvalidParameterException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	return nil
}

func validateValue(str *string, bin []byte) *apiError {
	if str != nil && bin != nil {
		return errorf("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if str != nil && len(*str) > maxSecretBytes || len(bin) > maxSecretBytes {
		return validationError("secretString", "Member must have length less than or equal to 65536")
	}
	return nil
}

func validateToken(tok *string) *apiError {
	if tok != nil && !tokenPattern.MatchString(*tok) {
		return validationError("clientRequestToken", "Member must have length between 32 and 64")
	}
	return nil
}

// lookup finds a secret by name or ARN.
func (f *Fake) lookup(id string) *secret {
	if s, ok := f.secrets[id]; ok {
		return s
	}
	for _, s := range f.secrets {
		if s.arn == id {
			return s
		}
	}
	return nil
}

func notFound() *apiError {
	return errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func markedForDeletion() *apiError {
	return errorf("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
}

type createSecretInput struct {
	Name                        string
	ClientRequestToken          *string
	Description                 *string
	KmsKeyId                    *string
	SecretString                *string
	SecretBinary                []byte
	Tags                        []tag
	AddReplicaRegions           json.RawMessage
	ForceOverwriteReplicaSecret *bool
	Type                        *string
}

func (f *Fake) createSecret(in *createSecretInput) (any, *apiError) {
	if e := validateName(in.Name); e != nil {
		return nil, e
	}
	if e := validateValue(in.SecretString, in.SecretBinary); e != nil {
		return nil, e
	}
	if e := validateToken(in.ClientRequestToken); e != nil {
		return nil, e
	}
	if len(in.Tags) > 50 {
		return nil, validationError("tags", "Member must have length less than or equal to 50")
	}
	if s := f.secrets[in.Name]; s != nil {
		if !s.deletedDate.IsZero() {
			return nil, errorf("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		// Idempotent retry of the same create (same token, same value).
		if in.ClientRequestToken != nil {
			if v := s.versions[*in.ClientRequestToken]; v != nil && equalValue(v, in.SecretString, in.SecretBinary) {
				return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.id}, nil
			}
		}
		return nil, errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	now := f.now()
	s := &secret{
		name:     in.Name,
		arn:      fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", Region, Account, in.Name, randomSuffix()),
		tags:     in.Tags,
		created:  now,
		changed:  now,
		versions: map[string]*version{},
	}
	if in.KmsKeyId != nil {
		s.kmsKeyID = *in.KmsKeyId
	}
	if in.Description != nil {
		s.description = *in.Description
	}
	f.secrets[in.Name] = s
	out := map[string]any{"ARN": s.arn, "Name": s.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		v := s.addVersion(in.ClientRequestToken, in.SecretString, in.SecretBinary, now)
		out["VersionId"] = v.id
	}
	return out, nil
}

func equalValue(v *version, str *string, bin []byte) bool {
	if (v.value == nil) != (str == nil) {
		return false
	}
	if str != nil && *v.value != *str {
		return false
	}
	return string(v.binary) == string(bin)
}

func (s *secret) addVersion(token, str *string, bin []byte, now time.Time) *version {
	id := newID()
	if token != nil {
		id = *token
	}
	v := &version{id: id, value: str, binary: bin, created: now}
	s.versions[id] = v
	if s.current != "" {
		// Keep AWSCURRENT and AWSPREVIOUS only, like AWS's staging labels.
		if s.previous != "" {
			delete(s.versions, s.previous)
		}
		s.previous = s.current
	}
	s.current = id
	s.changed = now
	return v
}

type getSecretValueInput struct {
	SecretId     string
	VersionId    *string
	VersionStage *string
}

func (f *Fake) getSecretValue(in *getSecretValueInput) (any, *apiError) {
	s := f.lookup(in.SecretId)
	if s == nil {
		return nil, notFound()
	}
	if !s.deletedDate.IsZero() {
		return nil, markedForDeletion()
	}
	id := s.current
	if in.VersionId != nil {
		id = *in.VersionId
	} else if in.VersionStage != nil {
		switch *in.VersionStage {
		case "AWSCURRENT":
		case "AWSPREVIOUS":
			id = s.previous
		default:
			id = ""
		}
	}
	v := s.versions[id]
	if v == nil {
		return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
	}
	out := map[string]any{
		"ARN":           s.arn,
		"Name":          s.name,
		"VersionId":     v.id,
		"VersionStages": s.stages(v.id),
		"CreatedDate":   epoch(v.created),
	}
	if v.value != nil {
		out["SecretString"] = *v.value
	}
	if v.binary != nil {
		out["SecretBinary"] = v.binary
	}
	return out, nil
}

func (s *secret) stages(id string) []string {
	switch id {
	case s.current:
		return []string{"AWSCURRENT"}
	case s.previous:
		return []string{"AWSPREVIOUS"}
	}
	return []string{}
}

type putSecretValueInput struct {
	SecretId           string
	ClientRequestToken *string
	SecretString       *string
	SecretBinary       []byte
	VersionStages      []string
	RotationToken      *string
}

func (f *Fake) putSecretValue(in *putSecretValueInput) (any, *apiError) {
	if in.SecretString == nil && in.SecretBinary == nil {
		return nil, errorf("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
	}
	if e := validateValue(in.SecretString, in.SecretBinary); e != nil {
		return nil, e
	}
	if e := validateToken(in.ClientRequestToken); e != nil {
		return nil, e
	}
	s := f.lookup(in.SecretId)
	if s == nil {
		return nil, notFound()
	}
	if !s.deletedDate.IsZero() {
		return nil, markedForDeletion()
	}
	if in.ClientRequestToken != nil {
		if v := s.versions[*in.ClientRequestToken]; v != nil {
			if !equalValue(v, in.SecretString, in.SecretBinary) {
				return nil, errorf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
			}
			return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.id, "VersionStages": s.stages(v.id)}, nil
		}
	}
	v := s.addVersion(in.ClientRequestToken, in.SecretString, in.SecretBinary, f.now())
	return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.id, "VersionStages": []string{"AWSCURRENT"}}, nil
}

type deleteSecretInput struct {
	SecretId                   string
	RecoveryWindowInDays       *int64
	ForceDeleteWithoutRecovery *bool
}

func (f *Fake) deleteSecret(in *deleteSecretInput) (any, *apiError) {
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, errorf("InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	window := int64(30)
	if in.RecoveryWindowInDays != nil {
		window = *in.RecoveryWindowInDays
		if window < 7 || window > 30 {
			return nil, errorf("InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	s := f.lookup(in.SecretId)
	if s == nil {
		return nil, notFound()
	}
	now := f.now()
	if force {
		delete(f.secrets, s.name)
		return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": epoch(now)}, nil
	}
	if !s.deletedDate.IsZero() {
		return nil, markedForDeletion()
	}
	s.deletedDate = now
	return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": epoch(now.AddDate(0, 0, int(window)))}, nil
}

type secretIDInput struct {
	SecretId string
}

func (f *Fake) restoreSecret(in *secretIDInput) (any, *apiError) {
	s := f.lookup(in.SecretId)
	if s == nil {
		return nil, notFound()
	}
	s.deletedDate = time.Time{}
	return map[string]any{"ARN": s.arn, "Name": s.name}, nil
}

func (f *Fake) describeSecret(in *secretIDInput) (any, *apiError) {
	s := f.lookup(in.SecretId)
	if s == nil {
		return nil, notFound()
	}
	stages := map[string][]string{}
	ids := make([]string, 0, len(s.versions))
	for id := range s.versions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		stages[id] = s.stages(id)
	}
	out := map[string]any{
		"ARN":                s.arn,
		"Name":               s.name,
		"CreatedDate":        epoch(s.created),
		"LastChangedDate":    epoch(s.changed),
		"Tags":               s.tags,
		"VersionIdsToStages": stages,
	}
	if s.kmsKeyID != "" {
		out["KmsKeyId"] = s.kmsKeyID
	}
	if s.description != "" {
		out["Description"] = s.description
	}
	if !s.deletedDate.IsZero() {
		out["DeletedDate"] = epoch(s.deletedDate)
	}
	return out, nil
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}
