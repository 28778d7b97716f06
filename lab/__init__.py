"""The lab's control code: runtimes behind one contract, the command line, experiments.

Kept free of imports: the Locust image copies this file with lab/penguins.py and
lab/trust.py only (locust/Dockerfile), and importing those must not pull in the rest.
"""
