"""The benchmark of the app as production runs it: `.venv/bin/python bench/run.py` (run.py says
what it does). It reads the contract's columns from customers.shape, which imports nothing of
the project; everything else of the app it reaches through manage.py and HTTP."""
