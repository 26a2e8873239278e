# deepul: two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint lab release grade bench site clean venv

venv: $(STAMP)

# (Re)install when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (deepul)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m deepul_helpers demo

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

# Started from grading/ so that nbgrader (formgrader) reads the course's grading/nbgrader_config.py:
# the course's folders and its gradebook grading/out/gradebook.db (never a stray ./gradebook.db).
lab: $(STAMP)
	cd grading && $(abspath $(VENV))/bin/jupyter lab --notebook-dir=$(CURDIR)

release: $(STAMP)
	$(PY) -m deepul_helpers release

# make grade ASSIGNMENT=hw1_autoregressive SUBMISSIONS=path/to/submitted
grade: $(STAMP)
	$(PY) -m deepul_helpers autograde $(ASSIGNMENT) --submissions $(SUBMISSIONS)

# make bench FAMILY=autoregressive
bench: $(STAMP)
	$(PY) -m deepul_helpers bench $(FAMILY)

# make site [FULL=1]: the course website under out/site/ (lectures executed in quick mode; FULL=1: full mode)
site: $(STAMP)
	$(PY) site/build.py $(if $(filter 1 yes true,$(FULL)),--full)

clean:
	rm -rf out grading/out .pytest_cache .ruff_cache
