//! S7comm dissector: placeholder (being written on its own branch).
