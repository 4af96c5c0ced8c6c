# merchantsync. `make dev` runs the whole system locally; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
FUNCTIONS := api credentials syncnow scheduler sync webhooks notify deliver
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='
ENV ?= dev
LISTEN_ADDR ?= 127.0.0.1:8080

.PHONY: all build deps test dev lint fmt vet deploy validate bench fuzz clean lambda-into FORCE $(addprefix invoke-,$(FUNCTIONS))

all: lint test build

## build: stripped linux/arm64 bootstrap binaries in bin/<fn>/bootstrap
build: $(addprefix bin/,$(addsuffix /bootstrap,$(FUNCTIONS)))

bin/%/bootstrap: FORCE
	@mkdir -p $(@D)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $@ ./functions/$*
	@ls -l $@ | awk '{print $$5, $$9}'

FORCE:

# `sam build` calls build-<LogicalId> (Metadata BuildMethod: makefile).
build-ApiFunction:         ; $(MAKE) lambda-into FN=api
build-CredentialsFunction: ; $(MAKE) lambda-into FN=credentials
build-SyncNowFunction:     ; $(MAKE) lambda-into FN=syncnow
build-SchedulerFunction:   ; $(MAKE) lambda-into FN=scheduler
build-SyncFunction:        ; $(MAKE) lambda-into FN=sync
build-WebhooksFunction:    ; $(MAKE) lambda-into FN=webhooks
build-NotifyFunction:      ; $(MAKE) lambda-into FN=notify
build-DeliverFunction:     ; $(MAKE) lambda-into FN=deliver
lambda-into:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(FN)

## deps: everything the tests and the local stack need (Go modules, Java, DynamoDB Local, cfn-lint, moto, svix)
deps:
	$(GO) mod download
	infra/scripts/install-dynamodb-local.sh
	infra/scripts/install-cfn-lint.sh >/dev/null
	infra/scripts/install-moto.sh >/dev/null
	infra/scripts/install-svix.sh

## test: every test, on DynamoDB Local, moto, the emulators and the Rakuten sandbox
test: deps
	infra/scripts/test.sh

## dev: the whole system on 127.0.0.1 (API on $(LISTEN_ADDR)), no AWS account, no Docker
dev: deps
	@infra/scripts/openapi-lint.sh --build-docs >/dev/null 2>&1 || echo "(the rendered API reference was not built; /openapi.yaml is still served)"
	@$(GO) build -o .cache/bin/dev ./infra/dev
	@# exec: the dev binary's parent is make, so it stops when make does.
	LISTEN_ADDR=$(LISTEN_ADDR) exec .cache/bin/dev

lint: fmt vet

fmt:
	infra/scripts/gofmt-check.sh

vet:
	$(GO) vet ./...

## bench: benchmarks, 6 runs each, summarised by benchstat
bench: deps
	infra/scripts/bench.sh

## fuzz: every fuzzer for FUZZTIME (default 1m) each; make test runs them for 5s
fuzz:
	infra/scripts/fuzz.sh $(or $(FUZZTIME),1m)

## deploy: sam build && sam deploy --config-env $(ENV)
deploy:
	sam build && sam deploy --config-env $(ENV)

validate:
	sam validate --lint

## invoke-<fn>: sam local invoke with infra/events/<fn>*.json (EVENT=… to pick one)
$(addprefix invoke-,$(FUNCTIONS)): invoke-%:
	@fn=$*; logical=$$(case $$fn in api) echo ApiFunction;; credentials) echo CredentialsFunction;; syncnow) echo SyncNowFunction;; scheduler) echo SchedulerFunction;; sync) echo SyncFunction;; webhooks) echo WebhooksFunction;; notify) echo NotifyFunction;; deliver) echo DeliverFunction;; esac); \
	ev=$${EVENT:-$$(ls infra/events/$$fn*.json | head -1)}; \
	echo "sam local invoke $$logical -e $$ev"; sam local invoke $$logical -e $$ev

clean:
	rm -rf bin .aws-sam
