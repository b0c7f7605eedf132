# Developer entry points. `make help` lists them.
SHELL := /bin/bash
ENGINE ?= localstack
NAME ?=
CARGO ?= cargo
HARNESS = $(CARGO) run --quiet -p harness --

.PHONY: help template iac scenario scenarios test unit e2e e2e-deployed package chromium-install report up gate actionlint bench bench-e2e bench-layer bench-replicate bench-faults engine-up engine-down engine-status lint layers workflow-pins fmt fuzz fuzz-smoke fuzz-install fuzz-workloads fuzz-workloads-smoke mutants mutants-smoke

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  variables: ENGINE=localstack|ministack|external (default localstack), NAME=<scenario>"

scenario: ## Run one scenario: make scenario NAME=poison-pill [ENGINE=ministack]
	@test -n "$(NAME)" || { echo "usage: make scenario NAME=<scenario> (see: make scenarios)"; exit 2; }
	$(HARNESS) --engine $(ENGINE) scenario run $(NAME)

scenarios: ## List the scenarios
	$(HARNESS) scenario list

# Runs cargo test, then the command $(2) if given (the fuzz smoke), and closes with one line
# adding up every test binary's result and the fuzz targets' (`fuzz result:` lines).
define cargo_test_summed
	@log=$$(mktemp); set -o pipefail; \
	$(CARGO) test $(1) 2>&1 | tee $$log; status=$$?; \
	$(if $(2),$(2) 2>&1 | tee -a $$log; s2=$$?; [ $$status -ne 0 ] || status=$$s2;) \
	awk '/^(test|fuzz) result:/ { for (i = 2; i <= NF; i++) { if ($$i == "passed;") p += $$(i-1); if ($$i == "failed;") f += $$(i-1) } } \
	     END { printf "%d passed, %d failed\n", p, f }' $$log; \
	rm -f $$log; exit $$status
endef

# The report's browser test (harness/tests/report_browser.rs) finds the Chromium this
# installs; where it cannot be installed the test is skipped, and this says so.
CHROMIUM_SKIPPED = SKIPPED: chromium not installed (run make chromium-install); the HTML report's browser test does not run

test: ## The static checks of deploy/ (make iac), unit tests, every scenario end to end on LocalStack and MiniStack (the core ones also through the CloudFormation templates), the report in a browser, the fuzz smoke, generated workloads, the deployed binaries
	$(MAKE) --no-print-directory iac
	@bash engines/install-chromium.sh >/dev/null || echo "$(CHROMIUM_SKIPPED)"
	$(call cargo_test_summed,--workspace --features e2e,bash fuzz/run.sh $(FUZZ_SMOKE_SECONDS) && $(MAKE) --no-print-directory fuzz-workloads-smoke && $(MAKE) --no-print-directory e2e-deployed)

unit: ## Fast tests only (no engine)
	$(call cargo_test_summed,--workspace)

e2e: ## Only the end-to-end scenario and provisioning tests
	$(CARGO) test --features e2e --test scenarios --test provision
	$(CARGO) test -p harness --features e2e --test up --test engine_death
	@bash engines/install-chromium.sh >/dev/null || echo "$(CHROMIUM_SKIPPED)"
	$(CARGO) test -p harness --features e2e --test report_browser -- --nocapture

chromium-install: ## Install the pinned Chromium and ChromeDriver for the report's browser test (outside the repo; a no-op when installed)
	@bash engines/install-chromium.sh

report: ## One scenario with its HTML report: make report NAME=poison-pill [ENGINE=ministack] [REPORT=report.html]
	@test -n "$(NAME)" || { echo "usage: make report NAME=<scenario> [REPORT=file]"; exit 2; }
	$(HARNESS) --engine $(ENGINE) scenario run $(NAME) --report $(or $(REPORT),report.html)

template: ## Regenerate deploy/cloudformation/ from fixtures/topology.toml (review the diff; a test fails while they differ)
	$(HARNESS) template

# cfn-lint and checkov from the hashed lock engines/cfn-tools-requirements.lock, installed into
# the harness cache on first use (engines/install-cfn-tools.sh); JUnit per tool in IAC_OUT.
IAC_OUT ?= target/iac
iac: ## cfn-lint and Checkov on deploy/ (zero errors, zero failed checks; skips carry their reasons in the code), and the Terraform module compared with the templates setting by setting
	bash tools/iac-check.sh $(IAC_OUT) deploy/cloudformation deploy/terraform
	"$$(bash engines/install-cfn-tools.sh)/python" tools/tf-matches-cfn.py

package: ## Build both functions' Lambda zips (cargo lambda, x86_64 and arm64) under <target>/lambda-zips; prints size and SHA-256
	$(HARNESS) package

# The scenarios tests/deployed.rs plays with the deployed binaries (its SCENARIOS list).
e2e-deployed: ## Core scenarios run by MiniStack's own Lambda and event source mappings on the x86_64 zips, same snapshots
	$(HARNESS) package --arch x86_64
	$(CARGO) test --features e2e-deployed --test deployed

up: ## The whole system running locally until Ctrl-C (ENGINE=...)
	$(HARNESS) --engine $(ENGINE) up

bench: ## Validator throughput vs the engine's bound, and the fidelity layer's cost (release build)
	$(CARGO) run --quiet --release -p harness -- --engine $(ENGINE) bench validator

bench-e2e: ## Upload-to-validated latency of 1000 objects, and the layer's share (release build)
	$(CARGO) run --quiet --release -p harness -- --engine $(ENGINE) bench e2e --objects 1000

bench-layer: ## A 1 GiB object through the fidelity layer and direct: times, peak RSS (release build)
	$(CARGO) run --quiet --release -p harness -- --engine $(ENGINE) bench layer --size-mb 1024

bench-replicate: ## A 256 MiB single-part and multipart version through the replicator: times, peak RSS (release build)
	$(CARGO) run --quiet --release -p harness -- --engine $(ENGINE) bench replicate --size-mb 256

bench-faults: ## The fault machinery's cost per request, idle and armed (release build, no engine)
	$(CARGO) run --quiet --release -p harness -- bench faults

engine-up: ## Start an engine in the background (ENGINE=...)
	$(HARNESS) --engine $(ENGINE) engine up

engine-down: ## Stop the engine started by engine-up
	$(HARNESS) --engine $(ENGINE) engine down

engine-status: ## Is the engine up and healthy?
	$(HARNESS) --engine $(ENGINE) engine status

# Fuzzing (fuzz/, cargo-fuzz on the stable toolchain; build and corpus outside the repo).
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 5

fuzz-install: ## Install the pinned cargo-fuzz (a no-op when installed)
	@bash engines/install-cargo-fuzz.sh

fuzz-smoke: ## Each fuzz target for FUZZ_SMOKE_SECONDS (5); fails on any crash
	bash fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

fuzz: ## Each fuzz target for FUZZ_SECONDS (600), printing its executions
	bash fuzz/run.sh $(FUZZ_SECONDS)

# Generated workloads with faults, checked by the invariants (harness fuzz). make test plays
# WORKLOADS per engine from a fixed seed; the longer budget takes a random seed (printed).
WORKLOADS ?= 100
WORKLOAD_SEED ?= 20261201
FUZZ_WORKLOADS ?= 1000

# The handlers log the failures the faults cause at ERROR; the invariants judge them.
FUZZ_LOG ?= warn,failure_notifier=off,checksum_validator=off,aws_sdk_s3=off

fuzz-workloads-smoke: ## WORKLOADS (100) generated workloads per engine from WORKLOAD_SEED, zero violations
	RUST_LOG=$(FUZZ_LOG) $(HARNESS) --engine localstack fuzz --runs $(WORKLOADS) --seed $(WORKLOAD_SEED)
	RUST_LOG=$(FUZZ_LOG) $(HARNESS) --engine ministack fuzz --runs $(WORKLOADS) --seed $(WORKLOAD_SEED)

fuzz-workloads: ## FUZZ_WORKLOADS (1000) generated workloads on ENGINE, random seed; writes a shrunk failing case
	RUST_LOG=$(FUZZ_LOG) $(HARNESS) --engine $(ENGINE) fuzz --runs $(FUZZ_WORKLOADS)

# Mutation testing (cargo-mutants, pinned, installed into the tools cache by
# engines/install-cargo-mutants.sh; its configuration is .cargo/mutants.toml). make mutants
# mutates the two functions and runs each mutant against their own fast tests; MUTANTS_ARGS
# adds options (e.g. --file functions/checksum-validator/src/decision.rs, or the harness's
# decision modules with -p harness). The nightly workflow (.github/workflows/mutants.yml)
# runs it with the engine tests on MiniStack. Results land in mutants.out/ (ignored).
MUTANTS_ARGS ?=

mutants: ## cargo-mutants on functions/ with their fast tests: caught, missed, unviable, timeout (long: about 1 s to 1 min per mutant)
	@bin=$$(bash engines/install-cargo-mutants.sh) && \
	"$$bin" mutants --package checksum-validator --package failure-notifier $(MUTANTS_ARGS)

mutants-smoke: ## Issue 24's two planted validator bugs in a copy, each against the WORKLOADS generated workloads per engine: both must be caught
	WORKLOADS=$(WORKLOADS) WORKLOAD_SEED=$(WORKLOAD_SEED) bash tools/planted-bugs.sh

# The fuzz crate is outside the workspace (cargo-fuzz wants its own); its clippy shares fuzz/run.sh's target directory.
FUZZ_TARGET_DIR ?= $(HOME)/.cache/autobackup/target-fuzz

lint: ## rustfmt check, clippy with warnings as errors (the workspace and the fuzz crate), actionlint (with shellcheck) on the workflows, the templates' drift and the static checks of deploy/
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets --features e2e,e2e-deployed -- -D warnings
	CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) clippy --manifest-path fuzz/Cargo.toml --bins --locked -- -D warnings
	$(MAKE) --no-print-directory actionlint
	$(MAKE) --no-print-directory layers
	$(MAKE) --no-print-directory workflow-pins
	$(HARNESS) template --check
	$(MAKE) --no-print-directory iac

layers: ## The import rule: no circle in any crate, every import as the README's layer map says (tools/layers)
	$(CARGO) test -q -p layers --test workspace

# actionlint and shellcheck from the hashed lock engines/lint-requirements.lock, installed into
# the harness cache on first use (engines/install-lint-tools.sh).
actionlint: ## actionlint over .github/workflows/, shellcheck on every run step
	@bin=$$(bash engines/install-lint-tools.sh) && \
	"$$bin/actionlint" -shellcheck "$$bin/shellcheck" -pyflakes= && \
	echo "actionlint: .github/workflows/ clean"

workflow-pins: ## the workflows' supply-chain rules (harness/tests/workflow_pins.rs): actions pinned by commit SHA with a tag comment, checkouts without a persisted token
	$(CARGO) test -q -p harness --test workflow_pins

gate: ## The CI pre-deploy gate on both engines: junit.xml, summary.md, report.html in target/gate/
	$(HARNESS) gate

fmt: ## Format the code
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml
