"""Experiments: run a matrix of deployments under load and write a capacity report."""
