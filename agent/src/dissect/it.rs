//! Recognisers of the IT protocols: not written yet.
