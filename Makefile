# The benchmark suite and the results page (docs/results.md). `make bench` takes hours on 2 CPU
# cores and resumes when interrupted; DATA points at the datasets folder.
DATA ?= ../shared/datasets
PYTHON ?= python

.PHONY: bench results test

bench:
	$(PYTHON) bench/run_all.py --data $(DATA) --skip-done

results:
	$(PYTHON) bench/report.py

test:
	$(PYTHON) -m pytest
