"""Micro-benchmarks of the service's own CPU: `make microbench` (not collected by `make test`)."""
