# Developer entry points. `make help` lists them.
ENGINE ?= localstack
NAME ?=
CARGO ?= cargo
HARNESS = $(CARGO) run --quiet -p harness --

.PHONY: help scenario scenarios test unit e2e up bench engine-up engine-down engine-status lint fmt

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  variables: ENGINE=localstack|ministack|external (default localstack), NAME=<scenario>"

scenario: ## Run one scenario: make scenario NAME=poison-pill [ENGINE=ministack]
	@test -n "$(NAME)" || { echo "usage: make scenario NAME=<scenario> (see: make scenarios)"; exit 2; }
	$(HARNESS) --engine $(ENGINE) scenario run $(NAME)

scenarios: ## List the scenarios
	$(HARNESS) scenario list

test: ## Unit tests and every scenario end to end on LocalStack and MiniStack
	$(CARGO) test --workspace --features e2e

unit: ## Fast tests only (no engine)
	$(CARGO) test --workspace

e2e: ## Only the end-to-end scenario and provisioning tests
	$(CARGO) test --features e2e --test scenarios --test provision
	$(CARGO) test -p harness --features e2e --test up

up: ## The whole system running locally until Ctrl-C (ENGINE=...)
	$(HARNESS) --engine $(ENGINE) up

bench: ## Validator throughput vs the engine's bound (release build)
	$(CARGO) run --quiet --release -p harness -- --engine $(ENGINE) bench validator

engine-up: ## Start an engine in the background (ENGINE=...)
	$(HARNESS) --engine $(ENGINE) engine up

engine-down: ## Stop the engine started by engine-up
	$(HARNESS) --engine $(ENGINE) engine down

engine-status: ## Is the engine up and healthy?
	$(HARNESS) --engine $(ENGINE) engine status

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features e2e -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all
