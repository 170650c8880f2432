# Convenience targets for people who have make; bash run.sh is the source of truth.
.PHONY: setup demo test lint bench
setup: ; bash run.sh setup
demo: ; bash run.sh demo
test: ; bash run.sh test
lint: ; bash run.sh lint
bench: ; bash run.sh bench
