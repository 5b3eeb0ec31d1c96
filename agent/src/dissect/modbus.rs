//! Modbus/TCP dissector.
