"""The native runtime: the lab's topology as real processes on 127.0.0.1."""
