//! The names a policy file may use, from the agent's own tables: every protocol id of
//! [`Proto`] and every command of the command table ([`Cmd`]), so `check`, start-up and
//! reload validate a policy against exactly what the dissectors report.

use crate::command::Cmd;
use crate::proto::Proto;
use infrawatch_config::policy::Vocabulary;
use std::collections::BTreeMap;

/// Protocol ids, and command names per protocol (in table order).
pub fn vocabulary() -> Vocabulary {
    let mut commands: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for c in Cmd::ALL {
        commands.entry(c.proto().name()).or_default().push(c.name());
    }
    Vocabulary {
        protocols: Proto::ALL.iter().map(|p| p.name()).collect(),
        commands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_and_command_is_named() {
        let v = vocabulary();
        assert_eq!(v.protocols.len(), Proto::COUNT);
        assert!(v.protocols.contains(&"modbus") && v.protocols.contains(&"other-udp"));
        let total: usize = v.commands.values().map(Vec::len).sum();
        assert_eq!(total, Cmd::COUNT);
        for (proto, names) in &v.commands {
            let p = Proto::from_name(proto);
            assert!(p.is_some(), "{proto}");
            for n in names {
                assert!(p.and_then(|p| Cmd::find(p, n)).is_some(), "{proto}/{n}");
            }
        }
        let modbus = v.commands.get("modbus").cloned().unwrap_or_default();
        assert!(modbus.contains(&"read_holding_registers"));
        assert!(modbus.contains(&"write_single_register"));
        assert!(!v.commands.contains_key("dns"));
    }
}
