package dynamo

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// expr builds update and condition expressions with placeholders for every
// attribute name (many of ours, like state, name and status, are reserved
// words) and value.
type expr struct {
	names   map[string]string
	values  map[string]types.AttributeValue
	sets    []string
	removes []string
	conds   []string
}

func newExpr() *expr {
	return &expr{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// n returns the placeholder of attribute name attr (letters and digits only).
func (e *expr) n(attr string) string {
	p := "#" + attr
	e.names[p] = attr
	return p
}

// v returns the placeholder of a value.
func (e *expr) v(val types.AttributeValue) string {
	p := ":v" + strconv.Itoa(len(e.values))
	e.values[p] = val
	return p
}

func (e *expr) set(attr string, val types.AttributeValue) {
	e.sets = append(e.sets, e.n(attr)+" = "+e.v(val))
}

// setS sets a string attribute, or removes it when s is empty.
func (e *expr) setS(attr, s string) {
	if s == "" {
		e.remove(attr)
		return
	}
	e.set(attr, avS(s))
}

func (e *expr) setRaw(clause string) { e.sets = append(e.sets, clause) }

func (e *expr) remove(attrs ...string) {
	for _, a := range attrs {
		e.removes = append(e.removes, e.n(a))
	}
}

// cond adds a condition clause; they are joined with AND.
func (e *expr) cond(format string, args ...any) {
	e.conds = append(e.conds, "("+fmt.Sprintf(format, args...)+")")
}

func (e *expr) update() *string {
	var b strings.Builder
	if len(e.sets) > 0 {
		b.WriteString("SET " + strings.Join(e.sets, ", "))
	}
	if len(e.removes) > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("REMOVE " + strings.Join(e.removes, ", "))
	}
	return aws.String(b.String())
}

func (e *expr) condition() *string {
	if len(e.conds) == 0 {
		return nil
	}
	return aws.String(strings.Join(e.conds, " AND "))
}

func (e *expr) nameMap() map[string]string {
	if len(e.names) == 0 {
		return nil
	}
	return e.names
}

func (e *expr) valueMap() map[string]types.AttributeValue {
	if len(e.values) == 0 {
		return nil
	}
	return e.values
}

func avS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func avN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func avBool(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }
func keyOf(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: avS(pk), AttrSK: avS(sk)}
}

func skOf(item map[string]types.AttributeValue) string {
	if v, ok := item[AttrSK].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// accountUpdate is an UpdateItem of tenant's network account item with e's
// update and condition expressions.
func (s *Store) accountUpdate(tenant, network string, e *expr) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(pkTenant(tenant), skAccount(network)),
		UpdateExpression:          e.update(),
		ConditionExpression:       e.condition(),
		ExpressionAttributeNames:  e.nameMap(),
		ExpressionAttributeValues: e.valueMap(),
	}
}

// accountTxUpdate is the same update as one item of a TransactWriteItems.
func (s *Store) accountTxUpdate(tenant, network string, e *expr) *types.Update {
	return &types.Update{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(pkTenant(tenant), skAccount(network)),
		UpdateExpression:          e.update(),
		ConditionExpression:       e.condition(),
		ExpressionAttributeNames:  e.nameMap(),
		ExpressionAttributeValues: e.valueMap(),
	}
}
