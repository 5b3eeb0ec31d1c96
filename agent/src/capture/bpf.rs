//! Classic BPF programs for the capture socket. Not written yet.
