//! dnp3 dissector: not written yet.
