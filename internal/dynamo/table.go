package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table schema. template.yaml declares exactly this table; CreateTable makes
// it for DynamoDB Local, the local stack and tests.
const (
	AttrPK    = "PK"    // partition key (S): TENANT#<tenant>
	AttrSK    = "SK"    // sort key (S): SETTINGS, NETWORK#…, REL#…, RUN#…, CHANGE#…
	IndexDue  = "due"   // sparse GSI of accounts due for the daily sync
	AttrDuePK = "duePK" // GSI partition key (S): SYNC#<shard>
	AttrDueSK = "dueSK" // GSI sort key (S): TENANT#<tenant>#NETWORK#<network>
	AttrTTL   = "expiresAt"

	// IndexStatus lists an account's relationships with one status, for
	// GET relationships?status=: a filter on the table would read every
	// relationship to find a few. Its range key is the table's SK, so
	// pages come in the same order and cursors stay the same.
	IndexStatus   = "status"
	AttrStatusKey = "relStatus" // GSI partition key (S): TENANT#<tenant>#REL#<network>#<status>
)

// DueProjection is the projection type of the due index: the scheduler only
// needs the keys (tenant and network come from the table's PK and SK).
const DueProjection = types.ProjectionTypeKeysOnly

// CreateTableInput is the production schema: on-demand billing, PK/SK string
// keys, the sparse GSI IndexDue (duePK/dueSK, KEYS_ONLY) and IndexStatus
// (relStatus/SK, ALL), and a stream of new and old images (the local
// stack's devstack.StreamPoller reads it as Lambda's DynamoDB Streams event
// source mapping reads the deployed table's). TTL on AttrTTL is set
// separately (UpdateTimeToLive) by CreateTable.
func CreateTableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		// NEW_AND_OLD_IMAGES: a stream consumer sees what a change
		// replaced as well as what it wrote, so it can act on transitions
		// (e.g. a relationship's status) without reading the table again.
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrDuePK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrDueSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrStatusKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexDue),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrDuePK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrDueSK), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: DueProjection},
		}, {
			IndexName: aws.String(IndexStatus),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrStatusKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
			},
			// ALL: a listing needs every attribute, and a KEYS_ONLY index
			// would cost a BatchGetItem per page.
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
}

// CreateTable creates the table with the production schema, waits until it
// is active and enables TTL on AttrTTL.
func CreateTable(ctx context.Context, c *dynamodb.Client, name string) error {
	return CreateTableFrom(ctx, c, CreateTableInput(name))
}

// CreateTableFrom is CreateTable for a schema a caller adjusted (tests
// leave the stream out where they do not read it).
func CreateTableFrom(ctx context.Context, c *dynamodb.Client, in *dynamodb.CreateTableInput) error {
	name := aws.ToString(in.TableName)
	if _, err := c.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("dynamo: create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 5*time.Minute); err != nil {
		return fmt.Errorf("dynamo: wait for table %s: %w", name, err)
	}
	_, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(AttrTTL),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("dynamo: enable TTL on %s: %w", name, err)
	}
	return nil
}
