"""Runtimes of the stack behind one contract (contract.py): native processes (native/)
or Docker Compose (docker/); select.py picks one from RUNTIME."""
