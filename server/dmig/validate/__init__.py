"""Migration validation: declarative rules, each compiled to SQL that runs inside the database.

A rule file (see ``spec.py`` and ``schemas/validation-rules.schema.json``) lists typed checks;
``runner.run_spec`` executes them in read-only transactions with a statement timeout and returns
bounded results. No check pulls a whole table into Python.
"""
