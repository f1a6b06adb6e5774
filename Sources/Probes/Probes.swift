// The Probes module: eBPF loading and packet tracing (issue 5).
