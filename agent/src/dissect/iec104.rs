//! iec104 dissector: not written yet.
