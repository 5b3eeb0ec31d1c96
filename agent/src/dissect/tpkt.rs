//! tpkt dissector: not written yet.
