//! s7comm dissector: not written yet.
