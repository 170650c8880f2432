# Convenience targets for people who have make; ./run.sh is the source of truth.
.PHONY: setup demo test lint bench
setup: ; ./run.sh setup
demo: ; ./run.sh demo
test: ; ./run.sh test
lint: ; ./run.sh lint
bench: ; ./run.sh bench
